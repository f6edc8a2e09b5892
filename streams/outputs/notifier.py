"""Posts alert transitions to chat webhooks: one queue and one sender task per destination.

Delivery is at least once while the process runs: a transition is retried (with backoff on
timeouts, connection errors and 5xx, after Retry-After on 429) until its destination accepts
it, in order, so a resolution never arrives before its firing. A slow or broken destination
holds up only its own queue. Webhook URLs are secrets: logs name the destination only.

``submit`` returns a future that is done once the alert is finished for every destination,
so that a caller can hold on to the alert's source (a Kafka offset) until then.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import aiohttp

from streams.config import ChatDestination, Silence
from streams.outputs.chat import Payload, render_group
from streams.outputs.records import AlertRecord

log = logging.getLogger(__name__)

Outcome = Literal["delivered", "retried", "rejected", "dropped", "silenced"]
OutcomeHook = Callable[[str, Outcome], None]

# A replayed alert (Kafka redelivery after a rebalance) is not posted twice by this process.
_REMEMBERED_ALERTS = 10_000
# A group's message stays within every platform's limits however long it is (chat.py shows
# the lines that fit); past 20 alerts it would show little more than their count.
MAX_GROUP = 20


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    first_delay: float = 1.0
    max_delay: float = 60.0
    max_retry_after: float = 600.0

    def backoff(self, attempt: int) -> float:
        """Doubling from first_delay up to max_delay, jittered down to half so that workers
        retrying the same outage spread out."""
        delay = min(self.max_delay, self.first_delay * 2.0 ** min(attempt - 1, 62))
        return delay * random.uniform(0.5, 1.0)

    def retry_after(self, header: str | None) -> float | None:
        """Seconds from a Retry-After header; None when absent or not a number of seconds."""
        try:
            seconds = float(header) if header is not None else math.nan
        except ValueError:
            return None
        if not math.isfinite(seconds) or seconds < 0:
            return None
        return min(seconds, self.max_retry_after)


class TokenBucket:
    """``burst`` posts back to back, then ``per_minute`` on average."""

    def __init__(self, per_minute: float, burst: int) -> None:
        self._per_second = per_minute / 60.0
        self._capacity = float(burst)
        self._tokens = float(burst)
        self._stamp = time.monotonic()

    async def take(self) -> None:
        while True:
            now = time.monotonic()
            refill = (now - self._stamp) * self._per_second
            self._tokens = min(self._capacity, self._tokens + refill)
            self._stamp = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return
            await asyncio.sleep((1.0 - self._tokens) / self._per_second)


@dataclass(frozen=True, slots=True)
class Attempt:
    outcome: Literal["delivered", "rejected", "retry"]
    reason: str
    retry_after: float | None = None


def classify(status: int, headers: Mapping[str, str], policy: RetryPolicy) -> Attempt:
    """2xx delivered; 429 and 5xx retried (after Retry-After if given); anything else rejected."""
    reason = f"HTTP {status}"
    if 200 <= status < 300:
        return Attempt("delivered", reason)
    if status == 429 or status >= 500:
        return Attempt("retry", reason, policy.retry_after(headers.get("Retry-After")))
    return Attempt("rejected", reason)


@dataclass(slots=True)
class _Alert:
    """One submitted alert, shared by the queues of every destination."""

    record: AlertRecord
    finished: asyncio.Future[None]
    remaining: int  # destinations it is not finished for

    def finish_one(self) -> None:
        self.remaining -= 1
        if self.remaining == 0 and not self.finished.done():
            self.finished.set_result(None)


@dataclass(slots=True)
class _Lane:
    destination: ChatDestination
    queue: asyncio.Queue[_Alert]
    bucket: TokenBucket
    pending: int = 0
    task: asyncio.Task[None] | None = None


class Notifier:
    """Fans every submitted alert out to each destination's queue.

    Use as ``async with Notifier(destinations, dashboard_url) as notifier:``, or call
    ``start()`` and ``close()``. ``submit`` never blocks and never raises for a destination;
    a caller that must not lose alerts to a full queue awaits ``wait_for_room()`` first.
    ``on_outcome(destination_name, outcome)`` is called per delivery, retry, rejection and drop,
    e.g. to count them.
    """

    def __init__(
        self,
        destinations: Sequence[ChatDestination],
        dashboard_url: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        queue_size: int = 1000,
        on_outcome: OutcomeHook | None = None,
        silences: Sequence[Silence] = (),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        names = [destination.name for destination in destinations]
        if len(set(names)) != len(names):
            raise ValueError(f"chat destination names must be unique: {names}")
        self._dashboard_url = dashboard_url
        self._retry = retry or RetryPolicy()
        self._on_outcome = on_outcome
        self._silences = silences
        self._clock = clock
        self._queue_size = queue_size
        self._lanes = [
            _Lane(d, asyncio.Queue(queue_size), TokenBucket(d.per_minute, d.burst))
            for d in destinations
        ]
        self._seen: OrderedDict[str, asyncio.Future[None]] = OrderedDict()
        self._unfinished: set[asyncio.Future[None]] = set()
        self._progress = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Notifier:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(headers={"User-Agent": "flowgauge"})
        for lane in self._lanes:
            lane.task = asyncio.create_task(self._run(lane), name=f"chat:{lane.destination.name}")

    async def close(self, drain_seconds: float = 0.0) -> None:
        """Stop sending, after up to ``drain_seconds`` for the queues to empty; the futures of
        alerts still unfinished are cancelled."""
        if drain_seconds > 0:
            await self.join(drain_seconds)
        tasks = [lane.task for lane in self._lanes if lane.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for finished in list(self._unfinished):
            finished.cancel()
        for lane in self._lanes:
            lane.task = None
            if lane.pending:
                log.warning("chat %s: %d alerts not delivered", lane.destination.name, lane.pending)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def submit(
        self, record: AlertRecord, to: Collection[str] | None = None
    ) -> asyncio.Future[None]:
        """Queue ``record`` for every destination that wants its rule and scope (of those
        named ``to``, if given), unless a silence mutes it now; a full queue drops it for
        that destination only.

        The future is done once the alert is finished for every destination: delivered,
        rejected (a 4xx other than 429, which no retry can fix) or dropped (its queue was full,
        or sending it raised). A drop counts because this process will never send it again;
        ``wait_for_room`` is how a caller avoids them. An alert_id submitted before gets the
        future of that first submission.
        """
        known = self._seen.get(record.alert_id)
        if known is not None:
            return known
        lanes = [
            lane
            for lane in self._lanes
            if lane.destination.wants(record.rule, record.scope)
            and (to is None or lane.destination.name in to)
        ]
        now = self._clock()
        if any(silence.mutes(record.rule, record.scope, now) for silence in self._silences):
            for lane in lanes:
                self._report(lane, "silenced")
            lanes = []
        alert = _Alert(record, asyncio.get_running_loop().create_future(), len(lanes))
        self._remember(record.alert_id, alert.finished)
        for lane in lanes:
            try:
                lane.queue.put_nowait(alert)
            except asyncio.QueueFull:
                log.error("chat %s: queue full, %s dropped", lane.destination.name, record.alert_id)
                self._report(lane, "dropped")
                alert.finish_one()
            else:
                lane.pending += 1
        if not lanes:
            alert.finished.set_result(None)
        return alert.finished

    async def wait_for_room(self) -> None:
        """Until an alert submitted now fits in every destination's queue.

        A queued alert is unfinished, so with fewer unfinished alerts than a queue holds no
        queue is full.
        """
        while len(self._unfinished) >= self._queue_size:
            self._progress.clear()
            await self._progress.wait()

    async def join(self, timeout: float | None = None) -> bool:
        """Wait until every queued alert is delivered or rejected; False if time ran out."""
        try:
            await asyncio.wait_for(
                asyncio.gather(*(lane.queue.join() for lane in self._lanes)), timeout
            )
        except TimeoutError:
            return False
        return True

    def _remember(self, alert_id: str, finished: asyncio.Future[None]) -> None:
        self._seen[alert_id] = finished
        if len(self._seen) > _REMEMBERED_ALERTS:
            self._seen.popitem(last=False)
        self._unfinished.add(finished)
        finished.add_done_callback(self._on_finished)

    def _on_finished(self, finished: asyncio.Future[None]) -> None:
        self._unfinished.discard(finished)
        self._progress.set()

    async def _run(self, lane: _Lane) -> None:
        while True:
            group = await self._group(lane)
            ids = ", ".join(alert.record.alert_id for alert in group)
            try:
                await self._deliver(lane, [alert.record for alert in group], ids)
            except Exception as error:  # a bug in one message must not stop the destination
                log.error(
                    "chat %s: %s dropped: %s", lane.destination.name, ids, type(error).__name__
                )
                self._report(lane, "dropped")
            # Not in a finally: a group cancelled mid-delivery by close() is still pending, so
            # its alerts' offsets are not committed.
            for alert in group:
                lane.pending -= 1
                lane.queue.task_done()
                alert.finish_one()

    async def _group(self, lane: _Lane) -> list[_Alert]:
        """The next alert, and with ``group_seconds`` every one queued within that long of
        it (at most ``MAX_GROUP``)."""
        group = [await lane.queue.get()]
        wait = lane.destination.group_seconds
        deadline = asyncio.get_running_loop().time() + wait
        while wait and len(group) < MAX_GROUP:
            left = deadline - asyncio.get_running_loop().time()
            try:
                group.append(await asyncio.wait_for(lane.queue.get(), max(left, 0.0)))
            except TimeoutError:
                break
        return group

    async def _deliver(self, lane: _Lane, records: list[AlertRecord], ids: str) -> None:
        name = lane.destination.name
        payload = render_group(records, lane.destination.kind, self._dashboard_url)
        attempt = 0
        while True:
            await lane.bucket.take()
            attempt += 1
            result = await self._post(lane.destination, payload)
            if result.outcome == "delivered":
                log.info("chat %s: %s delivered", name, ids)
                self._report(lane, "delivered")
                return
            if result.outcome == "rejected":
                log.error("chat %s: %s rejected: %s", name, ids, result.reason)
                self._report(lane, "rejected")
                return
            delay = result.retry_after
            if delay is None:
                delay = self._retry.backoff(attempt)
            log.warning(
                "chat %s: %s attempt %d failed: %s; retrying in %.1fs",
                name,
                ids,
                attempt,
                result.reason,
                delay,
            )
            self._report(lane, "retried")
            await asyncio.sleep(delay)

    async def _post(self, destination: ChatDestination, payload: Payload) -> Attempt:
        if self._session is None:
            raise RuntimeError("Notifier is not started")
        timeout = aiohttp.ClientTimeout(total=destination.timeout_seconds)
        try:
            async with self._session.post(
                destination.url.get_secret_value(),
                json=payload,
                timeout=timeout,
                allow_redirects=False,
            ) as response:
                await response.read()
                return classify(response.status, response.headers, self._retry)
        except TimeoutError:
            return Attempt("retry", "timeout")
        except (aiohttp.ClientError, OSError) as error:
            # Only the type: the message of a client error names the URL.
            return Attempt("retry", type(error).__name__)

    def _report(self, lane: _Lane, outcome: Outcome) -> None:
        if self._on_outcome is not None:
            self._on_outcome(lane.destination.name, outcome)
