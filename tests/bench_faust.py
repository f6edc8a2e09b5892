"""The baseline of the worker benchmark: a bare Faust agent iterating the input topic.

One ``faust.App``, one agent, ``async for`` over every message of ``ticket-events`` with
raw bytes (no parsing, no table), on the same broker as the worker. It counts until it
has seen ``COUNT`` messages, writes its rate (events/s from its first message to its
last) to ``DIR/bare-faust.rate`` and stops itself.

python -m tests.bench_faust kafka://HOST:PORT COUNT DIR
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import faust

from streams.broker import EmbeddedBroker
from streams.topics import INPUT

APP_ID = "bench-bare-faust"
RATE_FILE = "bare-faust.rate"


def build_app(broker_url: str, count: int, workdir: Path) -> faust.App:
    app = faust.App(
        APP_ID,
        broker=broker_url,
        store="memory://",
        datadir=str(workdir / APP_ID),
        topic_replication_factor=1,
        broker_rebalance_timeout=3,
        broker_session_timeout=4.5,
        broker_heartbeat_interval=1.0,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
    )
    topic = app.topic(
        INPUT, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )

    @app.agent(topic)
    async def count_events(stream: Any) -> AsyncIterator[None]:
        seen, first = 0, 0.0
        async for _ in stream:
            seen += 1
            if seen == 1:
                first = time.perf_counter()
            if seen == count:
                rate = (seen - 1) / (time.perf_counter() - first)
                (workdir / RATE_FILE).write_text(f"{rate}\n")
                os.kill(os.getpid(), signal.SIGTERM)
            yield None

    return app


def bare_faust_rate(broker: EmbeddedBroker, count: int, workdir: Path) -> float:
    """Run the bare agent in its own process (as a worker runs) and read its rate."""
    log = workdir / "bare-faust.log"
    command = [sys.executable, "-m", "tests.bench_faust", broker.url, str(count), str(workdir)]
    with log.open("wb") as out:
        subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, timeout=900, check=False)
    rate = workdir / RATE_FILE
    if not rate.exists():
        raise RuntimeError(f"the bare Faust agent wrote no rate; see {log}")
    return float(rate.read_text())


def main() -> None:
    broker_url, count, workdir = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    app = build_app(broker_url, count, workdir)
    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
