"""A Faust app whose flow stops just after it drains its first batch of ``TOPIC``, as when a
rebalance starts at that moment, and resumes a second later (tests/test_gaps.py).

Faust then drops the batch unread and seeks back to the committed offsets; nothing is
committed yet, so aiokafka leaves the partition past the dropped records. With
``streams.workarounds.gaps`` installed they are fetched again; with ``--as-faust-does``
the refetch is left out, to show the fault loses them.

It writes ``DIR/stopped`` when it stops the flow over a batch, and ``DIR/seen`` (the
messages its agent took in) as they come.

python -m tests.dropped_batch_app kafka://HOST:PORT TOPIC DIR [--as-faust-does]
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import faust
from faust.transport import consumer as faust_consumer

from streams.kafka import Kafka
from streams.workarounds import gaps
from tests.bench_faust import bare_app


def stop_the_flow_over_the_first_batch(topic: str, marker: Path) -> None:
    waiting = faust_consumer.Consumer._wait_next_records

    async def wait(self: Any, timeout: float) -> Any:
        records, active = await waiting(self, timeout)
        if records and not marker.exists() and any(tp.topic == topic for tp in records):
            marker.write_text(f"{sum(len(r) for r in records.values())} records\n")
            self.stop_flow()
            asyncio.get_running_loop().call_later(1.0, self.resume_flow)
        return records, active

    setattr(faust_consumer.Consumer, "_wait_next_records", wait)  # noqa: B010


def build_app(broker_url: str, topic_name: str, workdir: Path) -> faust.App:
    app = bare_app(f"dropped-batch-{topic_name}", broker_url, workdir / "app")
    topic = app.topic(topic_name, value_type=bytes, value_serializer="raw")
    seen = workdir / "seen"

    @app.agent(topic)
    async def count(stream: Any) -> AsyncIterator[None]:
        taken = 0
        async for _ in stream:
            taken += 1
            seen.write_text(f"{taken}\n")
            yield None

    return app


def main() -> None:
    broker_url, topic, workdir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    gaps.install_gap_check(Kafka((broker_url.removeprefix("kafka://"),)))
    if "--as-faust-does" in sys.argv[4:]:
        setattr(faust_consumer.Consumer, "getmany", gaps._original_getmany)  # noqa: B010
    stop_the_flow_over_the_first_batch(topic, workdir / "stopped")
    app = build_app(broker_url, topic, workdir)
    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
