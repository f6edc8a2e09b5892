"""Posts alert transitions to chat webhooks: one queue and one sender task per destination.

Delivery is at least once while the process runs: a transition is retried (with backoff on
timeouts, connection errors and 5xx, after Retry-After on 429) until its destination accepts
it, in order, so a resolution never arrives before its firing. A slow or broken destination
holds up only its own queue. Webhook URLs are secrets: logs name the destination only.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import aiohttp

from streams.chat import ChatDestination, Payload, render
from streams.records import AlertRecord

log = logging.getLogger(__name__)

Outcome = Literal["delivered", "retried", "rejected", "dropped"]
OutcomeHook = Callable[[str, Outcome], None]

# A replayed alert (Kafka redelivery after a rebalance) is not posted twice by this process.
_REMEMBERED_ALERTS = 10_000


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
class _Lane:
    destination: ChatDestination
    queue: asyncio.Queue[AlertRecord]
    bucket: TokenBucket
    pending: int = 0
    task: asyncio.Task[None] | None = None


class Notifier:
    """Fans every submitted alert out to each destination's queue.

    Use as ``async with Notifier(destinations, dashboard_url) as notifier:``, or call
    ``start()`` and ``close()``. ``submit`` never blocks and never raises for a destination.
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
    ) -> None:
        names = [destination.name for destination in destinations]
        if len(set(names)) != len(names):
            raise ValueError(f"chat destination names must be unique: {names}")
        self._dashboard_url = dashboard_url
        self._retry = retry or RetryPolicy()
        self._on_outcome = on_outcome
        self._lanes = [
            _Lane(d, asyncio.Queue(queue_size), TokenBucket(d.per_minute, d.burst))
            for d in destinations
        ]
        self._seen: OrderedDict[str, None] = OrderedDict()
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
        """Stop sending, after up to ``drain_seconds`` for the queues to empty."""
        if drain_seconds > 0:
            await self.join(drain_seconds)
        tasks = [lane.task for lane in self._lanes if lane.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for lane in self._lanes:
            lane.task = None
            if lane.pending:
                log.warning("chat %s: %d alerts not delivered", lane.destination.name, lane.pending)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def submit(self, record: AlertRecord) -> None:
        """Queue ``record`` for every destination; a full queue drops it for that one only."""
        if record.alert_id in self._seen:
            return
        self._seen[record.alert_id] = None
        if len(self._seen) > _REMEMBERED_ALERTS:
            self._seen.popitem(last=False)
        for lane in self._lanes:
            try:
                lane.queue.put_nowait(record)
            except asyncio.QueueFull:
                log.error("chat %s: queue full, %s dropped", lane.destination.name, record.alert_id)
                self._report(lane, "dropped")
            else:
                lane.pending += 1

    async def join(self, timeout: float | None = None) -> bool:
        """Wait until every queued alert is delivered or rejected; False if time ran out."""
        try:
            await asyncio.wait_for(
                asyncio.gather(*(lane.queue.join() for lane in self._lanes)), timeout
            )
        except TimeoutError:
            return False
        return True

    async def _run(self, lane: _Lane) -> None:
        while True:
            record = await lane.queue.get()
            try:
                await self._deliver(lane, record)
            except Exception as error:  # a bug in one message must not stop the destination
                log.error(
                    "chat %s: %s dropped: %s",
                    lane.destination.name,
                    record.alert_id,
                    type(error).__name__,
                )
                self._report(lane, "dropped")
            # Not in a finally: a record cancelled mid-delivery by close() is still pending.
            lane.pending -= 1
            lane.queue.task_done()

    async def _deliver(self, lane: _Lane, record: AlertRecord) -> None:
        name = lane.destination.name
        payload = render(record, lane.destination.kind, self._dashboard_url)
        attempt = 0
        while True:
            await lane.bucket.take()
            attempt += 1
            result = await self._post(lane.destination, payload)
            if result.outcome == "delivered":
                log.info("chat %s: %s delivered", name, record.alert_id)
                self._report(lane, "delivered")
                return
            if result.outcome == "rejected":
                log.error("chat %s: %s rejected: %s", name, record.alert_id, result.reason)
                self._report(lane, "rejected")
                return
            delay = result.retry_after
            if delay is None:
                delay = self._retry.backoff(attempt)
            log.warning(
                "chat %s: %s attempt %d failed: %s; retrying in %.1fs",
                name,
                record.alert_id,
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
