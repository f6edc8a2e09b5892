"""Flow control keeps what reached a queue while the flow was running
(streams/workarounds/gaps.py)."""

from __future__ import annotations

import pytest
from mode.utils.queues import FlowControlEvent, FlowControlQueue

from streams.workarounds import gaps


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
