"""Signed GitHub deliveries through ``flowgauge gateway``, beside a bare aiohttp handler.

The gateway runs as it does in production, a process of its own before the embedded broker;
each delivery is a real ``issue_comment.created`` body with a comment id of its own, signed
as GitHub signs it, so each is one event the broker acknowledges (acks=all) before the
answer. The same client (aiohttp, the same concurrency, bodies and headers) then posts to a
bare aiohttp app in a process of its own that reads the body and answers 200: what HTTP
alone costs on this machine, and the ratio of the two. Client, gateway and broker share
the machine's cores.

python -m tests.bench_gateway [--deliveries N] [--concurrency C]; ``--bare`` serves the
bare app (what the benchmark starts).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from streams.commands.broker import EmbeddedBroker
from streams.core.topics import INPUT
from tests.bench_support import cpu_seconds, percentiles
from tests.test_gateway import fixture, log_ends, signed, start_gateway

SETTINGS = """
[[gateway.sources]]
name = "gh"
kind = "github"
account = "acme"
secret = "s3cret"
"""
WARM_UP = 100
BARE = re.compile(rb"bare on (http://\S+)")
Delivery = tuple[bytes, dict[str, str]]


@dataclass(frozen=True)
class Rate:
    deliveries: int
    seconds: float
    p50: float
    p99: float
    statuses: dict[int, int]

    @property
    def per_second(self) -> float:
        return self.deliveries / self.seconds

    def line(self) -> str:
        return (
            f"{self.per_second:,.0f} deliveries/s ({self.deliveries:,} in {self.seconds:.2f}s),"
            f" latency p50 {self.p50 * 1e3:.1f} ms, p99 {self.p99 * 1e3:.1f} ms;"
            f" answers {dict(sorted(self.statuses.items()))}"
        )


@dataclass(frozen=True)
class GatewayBench:
    gateway: Rate
    bare: Rate
    concurrency: int
    published: int  # records on ticket-events at the end, warm-up included
    gateway_cpu_seconds: float  # the gateway process's, over the measured deliveries


def deliveries(count: int, first_id: int) -> list[Delivery]:
    """``count`` signed ``issue_comment.created`` deliveries, comment ids from ``first_id``."""
    document = json.loads(fixture("issue_comment.created"))
    made = []
    for number in range(first_id, first_id + count):
        document["comment"]["id"] = number
        body = json.dumps(document).encode()
        headers = {str(name): str(value) for name, value in signed(body, "issue_comment").items()}
        made.append((body, headers))
    return made


async def _post_all(url: str, batch: list[Delivery], concurrency: int) -> Rate:
    """Each delivery once, ``concurrency`` at a time on as many kept-alive connections."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    pending = iter(batch)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one_at_a_time() -> None:
            for body, headers in pending:  # one iterator: each delivery is taken once
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    statuses[response.status] += 1
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(one_at_a_time() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    p50, p99 = percentiles(latencies)
    return Rate(len(batch), elapsed, p50, p99, dict(statuses))


def bench_gateway(count: int = 2000, concurrency: int = 16) -> GatewayBench:
    workdir = Path(tempfile.mkdtemp(prefix="flowgauge-bench-gateway-"))
    settings = workdir / "flowgauge.toml"
    settings.write_text(SETTINGS)
    warm_up, batch = deliveries(WARM_UP, 1), deliveries(count, 1_000_000)
    with EmbeddedBroker() as broker:
        gateway = start_gateway(broker, settings, workdir / "gateway.log")
        try:
            url = f"{gateway.url}/webhooks/gh"
            asyncio.run(_post_all(url, warm_up, concurrency))
            cpu = cpu_seconds(gateway.process.pid)
            through_gateway = asyncio.run(_post_all(url, batch, concurrency))
            cpu = cpu_seconds(gateway.process.pid) - cpu
        finally:
            gateway.stop()
        published = sum(log_ends(broker, INPUT).values())
    bare = _start_bare(workdir / "bare.log")
    try:
        found = BARE.search((workdir / "bare.log").read_bytes())
        assert found is not None
        url = f"{found.group(1).decode()}/webhooks/gh"
        asyncio.run(_post_all(url, warm_up, concurrency))
        bare_rate = asyncio.run(_post_all(url, batch, concurrency))
    finally:
        bare.terminate()
        bare.wait(10)
    return GatewayBench(through_gateway, bare_rate, concurrency, published, cpu)


def _start_bare(log: Path, timeout: float = 30.0) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.bench_gateway", "--bare"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while not BARE.search(log.read_bytes()):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the bare app did not start: {log.read_text()[-2000:]}")
        time.sleep(0.05)
    return process


async def _serve_bare() -> None:
    """A POST route that reads the body and answers 200 with a short JSON body, served as
    the gateway serves (an AppRunner, no access log), on a free loopback port."""

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"published": ["comment"]})

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/webhooks/{name}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    print(f"bare on http://{host}:{port}", flush=True)
    await asyncio.Event().wait()


def report(result: GatewayBench) -> None:
    print(f"signed GitHub deliveries, concurrency {result.concurrency} (aiohttp client):")
    print(f"  flowgauge gateway, acked by the broker: {result.gateway.line()}")
    print(f"  bare aiohttp handler (reads, answers 200): {result.bare.line()}")
    ratio = result.gateway.per_second / result.bare.per_second
    print(f"  gateway / bare: {ratio:.2f}x the rate")
    per_delivery_ms = result.gateway_cpu_seconds / result.gateway.deliveries * 1e3
    print(
        f"  gateway CPU {per_delivery_ms:.2f} ms per delivery;"
        f" ticket-events holds {result.published:,} records"
        f" ({result.gateway.deliveries:,} measured + {WARM_UP} warm-up)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--bare", action="store_true", help="serve the bare app")
    args = parser.parse_args()
    if args.bare:
        asyncio.run(_serve_bare())
        return
    report(bench_gateway(args.deliveries, args.concurrency))


if __name__ == "__main__":
    main()
