"""``flowgauge demo``: broker, worker and simulator together, with the web view and a live
terminal view.

Both views read what any other service would: the derived topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from streams.commands.broker import EmbeddedBroker
from streams.commands.replay import publish
from streams.commands.simulate import Scenario, generate_events, paced
from streams.commands.web import start_web
from streams.config import FlowgaugeConfig
from streams.core.topics import AGING, ALERTS, FLOW
from streams.kafka import Kafka
from streams.outputs.chat import plain_text
from streams.outputs.records import AlertRecord
from streams.outputs.stopping import stop_requested

DEMO_WORKER_ENV = {"FLOWGAUGE_IDLE_TIMEOUT": "5s", "FLOWGAUGE_REBALANCE_TIMEOUT": "3"}


@dataclass
class View:
    """The latest derived records per scope, as the topics deliver them."""

    flow: dict[str, dict[str, Any]] = field(default_factory=dict)
    aging: dict[str, dict[str, Any]] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    published: int = 0

    def take(self, topic: str, value: bytes) -> None:
        record = json.loads(value)
        if topic == FLOW:
            self.flow[record["scope"]] = record
        elif topic == AGING:
            self.aging[record["scope"]] = record
        else:
            self.alerts.append(record)

    def render(self, metrics_url: str, started: float) -> Group:
        table = Table(expand=True, title="flowgauge: inflow vs outflow, per day (24h window)")
        table.add_column("scope", no_wrap=True)
        for column in ("open", "in/day", "out/day", "net", "days", "oldest", "silent", "breached"):
            table.add_column(column, justify="right", no_wrap=True)
        for scope in sorted(self.flow, key=lambda s: (s != "all", s)):
            if scope == "all" or scope.startswith("queue:"):
                table.add_row(*self._row(scope))
        as_of = self.flow.get("all", {}).get("as_of", "waiting for the first boundary...")
        legend = (
            "days = open / daily outflow (7d); silent = open with no meaningful reply; "
            "breached = open past SLA target, first response / resolution"
        )
        status = Text(
            f"event time {as_of}   events published {self.published}   "
            f"running {time.monotonic() - started:.0f}s   metrics {metrics_url}"
        )
        alerts = [
            Text(f"{a['at']} {a['state'].upper():8} {a['summary']}") for a in self.alerts[-6:]
        ]
        return Group(
            table,
            Text(legend, style="dim"),
            Text(_bands(self.aging.get("all", {}))),
            status,
            Panel(Group(*alerts) if alerts else Text("no alerts yet")),
        )

    def _row(self, scope: str) -> list[str | Text]:
        flow = self.flow[scope]
        inflow, outflow = flow["inflow"].get("24h", 0), flow["outflow"].get("24h", 0)
        net = inflow - outflow
        weekly = flow["outflow"].get("7d", 0)
        days = f"{flow['open'] / (weekly / 7):.1f}" if weekly else "-"
        aging = self.aging.get(scope, {})
        oldest = _age(aging.get("oldest_age_seconds", 0))
        style = "bold red" if net > 0 else "green"
        untouched = str(aging.get("untouched", "-"))
        sla = aging.get("sla", {})
        breached = "/".join(
            str(sla.get(target, {}).get("breached", "-"))
            for target in ("first_response", "resolution")
        )
        name = scope.removeprefix("queue:")
        net_text = Text(f"{net:+d}", style=style)
        return [
            name,
            str(flow["open"]),
            str(inflow),
            str(outflow),
            net_text,
            days,
            oldest,
            untouched,
            breached,
        ]


def _bands(aging: dict[str, Any]) -> str:
    """The age bands of the whole backlog on one line."""
    bands = aging.get("bands", {})
    cells = [f"{name.removeprefix('age_')} {count}" for name, count in bands.items()]
    return "open by age: " + ("  ".join(cells) if cells else "-")


def _age(seconds: int) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f}d"
    return f"{seconds / 3600:.1f}h"


async def _follow(config: FlowgaugeConfig, view: View) -> None:
    consumer = Kafka.of(config).consumer(
        FLOW, AGING, ALERTS, auto_offset_reset="earliest", group_id=None, metadata_max_age_ms=2000
    )
    await consumer.start()
    try:
        async for message in consumer:
            view.take(message.topic, message.value)
    finally:
        await consumer.stop()


async def _simulate(config: FlowgaugeConfig, view: View, speed: float) -> None:
    async def counted() -> object:
        async for value in paced(generate_events(Scenario()), speed):
            view.published += 1
            yield value

    await publish(config, counted())  # type: ignore[arg-type]


async def _run(
    config: FlowgaugeConfig, duration: float | None, speed: float, url: str, where: str
) -> None:
    runner, page = await start_web(config)
    print(f"web view {page}  (open it in a browser; the terminal view follows)", flush=True)
    print(where, flush=True)
    view = View()
    started = time.monotonic()
    # The broker and the worker run in sessions of their own: only ``run_demo``'s own
    # ending stops them, however the demo is asked to stop.
    stopping = stop_requested()
    tasks = [
        asyncio.create_task(_simulate(config, view, speed)),
        asyncio.create_task(_follow(config, view)),
    ]
    console = Console()
    try:
        with Live(view.render(url, started), console=console, refresh_per_second=4) as live:
            while not stopping.is_set() and (
                duration is None or time.monotonic() - started < duration
            ):
                await asyncio.sleep(0.25)
                live.update(view.render(url, started))
                for task in tasks:
                    if task.done() and task.exception():
                        raise task.exception()  # type: ignore[misc]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await runner.cleanup()
    if not config.chat:  # what each alert would read as in a team's chat
        for alert in view.alerts:
            text = plain_text(AlertRecord.model_validate(alert), config.dashboard_url)
            console.print(text, markup=False, highlight=False)
            console.print()


def _start_worker(
    config: FlowgaugeConfig, broker: EmbeddedBroker, log: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ, **DEMO_WORKER_ENV, "FLOWGAUGE_BROKER": broker.url,
        "FLOWGAUGE_WEB_PORT": str(config.web_port), "FLOWGAUGE_DATA_DIR": str(config.data_dir),
    }  # fmt: skip
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "streams.commands.cli", "worker"], env=env, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def run_demo(config: FlowgaugeConfig, duration: float | None, speed: float) -> int:
    """Run everything in the foreground until Ctrl-C, SIGTERM or ``duration`` seconds."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    log = config.data_dir / "demo-worker.log"
    with EmbeddedBroker() as broker:
        live = config.model_copy(update={"broker": broker.url})
        worker = _start_worker(live, broker, log)
        url = f"http://{config.web_host}:{config.web_port}/metrics"
        try:
            with contextlib.suppress(KeyboardInterrupt):
                where = f"broker {broker.url}; worker log {log}; metrics {url}"
                asyncio.run(_run(live, duration, speed, url, where))
        finally:
            _stop(worker)
    print("demo stopped", flush=True)
    return 0
