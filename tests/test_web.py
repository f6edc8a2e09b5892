"""The web view in a real browser: the one-file report offline, and ``flowgauge web`` live
against the embedded broker and a worker, each number on screen equal to ``report``."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from streams.commands.broker import EmbeddedBroker, free_port
from streams.commands.replay import message_key
from streams.core.timeline import iso_seconds
from streams.core.topics import AGING, FLOW, INPUT
from tests.browser import Watched, charts_drawn, chromium, watch
from tests.cluster import Worker, end_process, produce, start_worker
from tests.conftest import SHARED_FIXTURES, need_path
from tests.proxy import FreezingProxy

STEP = "1h"
USER, PASSWORD = "lead", "wall-screen"


@pytest.fixture(scope="module")
def events() -> Path:
    return need_path(SHARED_FIXTURES / "sample-events.jsonl", "shared fixtures")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as running:
        yield running


@dataclass
class Report:
    """What ``flowgauge report`` says, per scope, at its last boundary."""

    last: dict[str, dict[str, str]]  # scope -> its last row of the main CSV
    firing: dict[str, int]  # scope -> rules whose last transition fired

    def number(self, scope: str, column: str) -> float:
        return float(self.last[scope][column])


def report_of(events: Path, folder: Path, *extra: str) -> Report:
    rows, alerts = folder / "rows.csv", folder / "alerts.csv"
    command = [sys.executable, "-m", "streams.commands.cli", "report", str(events)]
    command += ["--step", STEP, "--output", str(rows), "--alerts", str(alerts), *extra]
    subprocess.run(command, check=True, capture_output=True)
    with rows.open() as lines:
        last = {row["scope"]: row for row in csv.DictReader(lines)}
    states: dict[tuple[str, str], str] = {}
    with alerts.open() as lines:
        for row in csv.DictReader(lines):
            states[(row["rule"], row["scope"])] = row["state"]
    firing: dict[str, int] = {}
    for (_, scope), state in states.items():
        firing[scope] = firing.get(scope, 0) + (state == "firing")
    return Report(last, firing)


def send(broker: EmbeddedBroker, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    """``produce`` from a thread of its own: Playwright's sync API holds this thread's loop."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(produce, broker, topic, messages).result(60)


def assert_shows(watched: Watched, report: Report, scope: str) -> None:
    """The headline numbers of ``scope`` are the report's at its last boundary."""
    row = report.last[scope]
    assert watched.number("as-of") == iso_seconds(row["as_of"])
    for testid, column in (
        ("open", "open"),
        ("inflow-24h", "inflow_24h"),
        ("outflow-24h", "outflow_24h"),
        ("oldest-age", "oldest_age_seconds"),
        ("untouched", "untouched"),
    ):
        assert watched.number(testid) == report.number(scope, column), testid
    assert watched.number("firing") == report.firing.get(scope, 0)


def check_page(watched: Watched, report: Report, screenshot: str) -> str:
    """Scope ``all`` shows the report's numbers and every chart drew; its screenshot; then
    the scope selector shows a queue's numbers and its pull list. The queue."""
    assert_shows(watched, report, "all")
    drawn = charts_drawn(watched.page)
    assert set(drawn) == {"headline", "level", "cfd", "aging", "indicators"}
    assert all(points > 0 for points in drawn.values()), drawn
    watched.screenshot(screenshot)
    queue = next(scope for scope in report.last if scope.startswith("queue:"))
    watched.page.select_option('[data-testid="scope"]', queue)
    wait_until("the queue's view", lambda: watched.number("open") == report.number(queue, "open"))
    assert_shows(watched, report, queue)
    assert watched.page.locator('[data-testid="pull"]').inner_text().strip()
    return queue


def wait_until(what: str, condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.25)


def test_the_report_page_opens_offline_and_shows_the_report_s_numbers(
    browser: Browser, events: Path, tmp_path: Path
) -> None:
    page_file = tmp_path / "flowgauge.html"
    report = report_of(events, tmp_path, "--html", str(page_file))
    context = browser.new_context(offline=True, viewport={"width": 1600, "height": 1000})
    try:
        page = context.new_page()
        # Anything but the file itself is refused, and seen.
        page.route(
            "**/*",
            lambda route: (
                route.continue_() if route.request.url.startswith("file://") else route.abort()
            ),
        )
        watched = watch(page)
        page.goto(page_file.as_uri())
        page.wait_for_selector('[data-testid="open"][data-value]:not([data-value=""])')
        queue = check_page(watched, report, "report-all")
        assert f"scope={queue.replace(':', '%3A')}" in page.url
        # History ends at its as_of: the day the page is read tells no ticket's age.
        assert not page.is_visible('[data-testid="oldest-age-now"]')
        assert not watched.errors
        assert [url for url in watched.requests if not url.startswith("file://")] == []
    finally:
        context.close()


@dataclass
class Live:
    """The embedded broker behind a proxy that can cut it off, a worker, ``flowgauge web``."""

    broker: EmbeddedBroker
    proxy: FreezingProxy
    worker: Worker
    web: subprocess.Popen[bytes]
    url: str

    def view(self, scope: str = "all") -> dict:
        request = urllib.request.Request(
            f"{self.url}api/view?scope={scope}",
            headers={"Authorization": "Basic " + _basic()},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            shown: dict = json.loads(response.read())
            return shown


def _basic() -> str:
    import base64

    return base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


def web_process(broker_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    environment = {
        **os.environ,
        "FLOWGAUGE_BROKER": broker_url,
        "FLOWGAUGE_STEP": STEP,
        "FLOWGAUGE_UI_REFRESH_SECONDS": "1",
        "FLOWGAUGE_WEB_USERNAME": USER,
        "FLOWGAUGE_WEB_PASSWORD": PASSWORD,
    }
    command = [sys.executable, "-m", "streams.commands.cli", "web", "--port", str(port)]
    with log.open("wb") as out:
        return subprocess.Popen(command, env=environment, stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def live(events: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    folder = tmp_path_factory.mktemp("live")
    proxy_port = free_port()
    with (
        EmbeddedBroker(advertised_port=proxy_port) as broker,
        FreezingProxy(proxy_port, broker.port) as proxy,
    ):
        worker = start_worker(broker, folder, "worker", FLOWGAUGE_STEP=STEP)
        port = free_port()
        web = web_process(broker.url, port, folder / "web.log")
        try:
            wait_listening(web, port, folder / "web.log")
            replay = [sys.executable, "-m", "streams.commands.cli", "replay", str(events)]
            subprocess.run(
                replay,
                check=True,
                capture_output=True,
                env={**os.environ, "FLOWGAUGE_BROKER": broker.url},
            )
            yield Live(broker, proxy, worker, web, f"http://127.0.0.1:{port}/")
        finally:
            end_process(web)
            worker.stop()


def wait_listening(web: subprocess.Popen[bytes], port: int, log: Path) -> None:
    def answers() -> bool:
        assert web.poll() is None, f"flowgauge web exited: {log.read_text()[-2000:]}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return True
        except OSError:
            return False

    wait_until("flowgauge web answers", answers, 30)


def caught_up(live: Live, report: Report, scope: str = "all") -> bool:
    try:
        shown = live.view(scope)
    except OSError:
        return False
    latest = shown["latest"]
    wanted = report.last[scope]["as_of"]
    return all(latest[kind] and latest[kind]["as_of"] == wanted for kind in ("flow", "aging"))


def open_live(browser: Browser, live: Live, query: str = "") -> tuple[Watched, Callable[[], None]]:
    context = browser.new_context(
        http_credentials={"username": USER, "password": PASSWORD},
        viewport={"width": 1600, "height": 1000},
    )
    page = context.new_page()
    watched = watch(page)
    page.goto(live.url + query)
    return watched, context.close


def test_the_live_page_shows_what_report_computes_and_follows_new_events(
    browser: Browser, live: Live, events: Path, tmp_path: Path
) -> None:
    report = report_of(events, tmp_path)
    wait_until(
        "the web service has read the worker's last boundary", lambda: caught_up(live, report), 120
    )
    with urllib.request.urlopen(f"{live.url}readyz", timeout=5) as ready:  # open, as probes are
        assert ready.status == 200
        # The page runs its own files only; a violation would be a console error below.
        assert ready.headers["Content-Security-Policy"].startswith("default-src 'none'; ")
    watched, close = open_live(browser, live)
    try:
        page = watched.page
        wait_until(
            "the page shows the last boundary", lambda: watched.value("as-of") not in (None, "")
        )
        check_page(watched, report, "live-all")
        page.select_option('[data-testid="scope"]', "all")
        # Live, the oldest ticket's age now runs on from its as_of with the clock.
        assert page.is_visible('[data-testid="oldest-age-now"]')
        assert watched.number("oldest-age-now") > watched.number("oldest-age")

        # A ticket opened two hours after the last event: the page moves on by itself.
        later = datetime.fromtimestamp(last_event(events), UTC) + timedelta(hours=2)
        event = {
            "schema_version": 1,
            "event_id": "web-live-1",
            "type": "created",
            "ticket_id": "WEB-LIVE-1",
            "occurred_at": later.isoformat(),
            "queue": "billing",
            "priority": "high",
            "channel": "email",
            "requester_id": "web-live",
        }
        line = json.dumps(event).encode()
        longer = tmp_path / "longer.jsonl"
        longer.write_bytes(events.read_bytes().rstrip(b"\n") + b"\n" + line + b"\n")
        moved = report_of(longer, tmp_path)
        assert moved.last["all"]["as_of"] != report.last["all"]["as_of"]
        send(live.broker, INPUT, [(message_key(line), line)])
        wait_until(
            "the page shows the new boundary without a reload",
            lambda: watched.number("as-of") == iso_seconds(moved.last["all"]["as_of"]),
        )
        assert_shows(watched, moved, "all")
        assert not watched.errors, watched.errors
    finally:
        close()


def last_event(events: Path) -> float:
    """The latest ``occurred_at`` among the file's events that have a valid one."""
    latest = 0.0
    for line in events.read_bytes().splitlines():
        try:
            moment = datetime.fromisoformat(json.loads(line)["occurred_at"])
        except (ValueError, KeyError, TypeError):
            continue
        if moment.tzinfo is not None:  # one without an offset is invalid: report skips it
            latest = max(latest, moment.timestamp())
    return latest


def test_records_that_are_not_records_are_skipped_and_counted(browser: Browser, live: Live) -> None:
    before = live.view()
    junk = [(b"all", b"{not json"), (b"all", json.dumps({"scope": "all", "open": "many"}).encode())]
    send(live.broker, FLOW, junk)
    send(live.broker, AGING, [(b"all", b"[]")])
    wait_until("three records skipped", lambda: live.view()["skipped"] == before["skipped"] + 3)
    watched, close = open_live(browser, live)
    try:
        wait_until("the page draws", lambda: watched.value("open") not in (None, ""))
        assert watched.number("open") == before["latest"]["flow"]["open"]
        assert all(points > 0 for points in charts_drawn(watched.page).values())
        assert not watched.errors, watched.errors
    finally:
        close()


def test_the_page_says_its_data_is_stale_while_the_broker_is_lost(
    browser: Browser, live: Live
) -> None:
    watched, close = open_live(browser, live, "?wall=1")
    try:
        stale = '[data-testid="stale"]'
        wait_until("the page draws", lambda: watched.value("open") not in (None, ""))
        assert watched.page.locator(stale).count() == 0 or not watched.page.is_visible(stale)
        watched.screenshot("live-wall")
        live.proxy.sever()
        wait_until("the stale mark", lambda: watched.page.is_visible(stale), 40)
        assert "broker" in (watched.value("stale") or "")
        assert watched.number("open") > 0  # what it had stays on screen
        watched.screenshot("live-wall-stale")
        live.proxy.restore()
        wait_until("the stale mark goes", lambda: not watched.page.is_visible(stale), 60)
        # It reads on where it was: a record written now reaches the page.
        latest = live.view()["latest"]["flow"]
        later = datetime.fromtimestamp(iso_seconds(latest["as_of"]) + 3600, UTC)
        record = {**latest, "as_of": later.strftime("%Y-%m-%dT%H:%M:%SZ"), "open": 4321}
        send(live.broker, FLOW, [(b"all", json.dumps(record).encode())])
        wait_until("the record written after the cut", lambda: watched.number("open") == 4321)
        assert not [e for e in watched.errors if "api/view" not in e], watched.errors
    finally:
        close()


def test_make_demo_prints_the_web_view_s_address_first_and_serves_it(tmp_path: Path) -> None:
    """``flowgauge demo`` (what ``make demo`` runs) starts the web view beside the terminal
    one; its first line is the page's address, and the page fills as the simulator runs.
    Asked to stop as ``timeout`` or a service manager asks (SIGTERM), it stops its broker and
    worker too."""
    port, metrics_port = free_port(), free_port()
    environment = {
        **os.environ,
        "FLOWGAUGE_UI_PORT": str(port),
        "FLOWGAUGE_WEB_PORT": str(metrics_port),
        "FLOWGAUGE_DATA_DIR": str(tmp_path / "data"),
    }
    command = [sys.executable, "-m", "streams.commands.cli", "demo", "--duration", "90"]
    output = tmp_path / "demo.out"  # a file, not a pipe: the terminal view writes on
    with output.open("wb") as out:
        demo = subprocess.Popen(command, env=environment, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until("the demo's first line", lambda: b"\n" in output.read_bytes(), 30)
        first = output.read_text().splitlines()[0]
        assert first.startswith(f"web view http://127.0.0.1:{port}/"), first

        def drawn() -> bool:
            url = f"http://127.0.0.1:{port}/api/view?scope=all"
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())["as_of"] is not None

        wait_until("the demo's page shows a boundary", drawn, 80)
        broker_port = int(output.read_text().splitlines()[1].split(";")[0].rsplit(":", 1)[1])
        assert answers(broker_port)
        assert answers(metrics_port)

        demo.send_signal(signal.SIGTERM)
        assert demo.wait(30) == 0
        assert "demo stopped" in output.read_text()
        assert not answers(broker_port), "the demo's broker outlived it"
        assert not answers(metrics_port), "the demo's worker outlived it"
    finally:
        end_process(demo, signal.SIGINT)


def answers(port: int) -> bool:
    """Whether something on this machine accepts connections on ``port``."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
