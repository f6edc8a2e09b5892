"""Flow control keeps what reached a queue while the flow was running, and a batch Faust
drops unread is fetched again (streams/workarounds/gaps.py): the latter in a Faust app on
the embedded broker (tests/dropped_batch_app.py)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mode.utils.queues import FlowControlEvent, FlowControlQueue

from streams.commands.broker import EmbeddedBroker
from streams.workarounds import gaps
from tests.cluster import produce

MESSAGES = 40


@pytest.fixture
def flow(monkeypatch: pytest.MonkeyPatch) -> FlowControlEvent:
    monkeypatch.setattr(FlowControlEvent, "resume", gaps.resume_keeping_fresh_messages)
    return FlowControlEvent(initially_suspended=False)


def _queue(flow: FlowControlEvent, *items: str) -> FlowControlQueue[str]:
    queue: FlowControlQueue[str] = FlowControlQueue(
        maxsize=10, flow_control=flow, clear_on_resume=True
    )
    for item in items:
        queue.put_nowait(item)
    return queue


def test_a_resume_while_the_flow_runs_keeps_the_queued_messages(flow: FlowControlEvent) -> None:
    """Faust's recovery resumes a running flow after its seek: the messages fetched after
    the seek sit in the queues, and mode's resume used to drop them."""
    queue = _queue(flow, "fetched after the seek")
    flow.resume()
    assert flow.is_active()
    assert queue.qsize() == 1


def test_a_resume_that_ends_a_suspension_still_clears_the_queues(flow: FlowControlEvent) -> None:
    """After a revoke the queues hold messages from before the rebalance: those go."""
    queue = _queue(flow, "from before the rebalance")
    flow.suspend()
    flow.resume()
    assert flow.is_active()
    assert queue.qsize() == 0


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running


def taken_in(broker: EmbeddedBroker, workdir: Path, topic: str, *flags: str) -> int:
    """What the app's agent took in of ``MESSAGES`` sent before it started, once it has
    all or 15 s have passed since it stopped its flow over a batch."""
    produce(broker, topic, [(None, b"%d" % n) for n in range(MESSAGES)], partition=0)
    command = [sys.executable, "-m", "tests.dropped_batch_app", broker.url, topic, str(workdir)]
    seen, stopped = workdir / "seen", workdir / "stopped"
    with (workdir / "app.log").open("wb") as log:
        app = subprocess.Popen([*command, *flags], stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not stopped.exists():
                time.sleep(0.2)
            assert stopped.exists(), (workdir / "app.log").read_text()
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and _count(seen) < MESSAGES:
                time.sleep(0.2)
            return _count(seen)
        finally:
            app.terminate()
            app.wait(timeout=30)


def _count(seen: Path) -> int:
    return int(seen.read_text() or 0) if seen.exists() else 0


@pytest.mark.broker
def test_a_batch_dropped_when_the_flow_stops_is_fetched_again(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """Nothing committed yet: Faust's seek back to the committed offsets leaves the
    partition past the batch it dropped, and only the refetch brings it back."""
    assert taken_in(broker, tmp_path, "dropped-batch-fixed") == MESSAGES


@pytest.mark.broker
def test_faust_alone_loses_that_batch(broker: EmbeddedBroker, tmp_path: Path) -> None:
    """The fault is real: without the refetch the agent takes in none of the batch. Should
    this fail, Faust refetches on its own and the workaround can go."""
    assert taken_in(broker, tmp_path, "dropped-batch-as-faust", "--as-faust-does") == 0
