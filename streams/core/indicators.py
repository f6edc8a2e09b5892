"""Leading indicators of one scope over rolling windows, as bucket aggregates.

The signals that move a day or three before the backlog does: reopens soon after a
resolution, slower first responses, more transfers and back-and-forth per resolved
ticket, and a tag taking a larger share of inflow than its baseline. Buckets are
the flow's step buckets; window aggregates slide one bucket per boundary, and the
response times in the window sit in a sorted list, so percentiles are lookups.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

from sortedcontainers import SortedList

from streams.core.timeline import US_PER_SECOND, boundary_index

REOPEN_HORIZON_US = 7 * 86400 * US_PER_SECOND  # a reopen this soon after resolving counts
RECONTACT_HORIZON_US = 7 * 86400 * US_PER_SECOND  # a new ticket this soon from the requester
DEFLECTION_HORIZON_US = 48 * 3600 * US_PER_SECOND  # an AI resolution holds if nobody returns
SPIKE_FACTOR = 3
SPIKE_MIN_TICKETS = 10
TOP_DRIVERS = 3
# A step's most frequent tags that its windows keep: a flood of distinct tags (a free-text
# field mapped to tags) would otherwise grow every window of every scope it reaches.
TAGS_PER_STEP = 50


@dataclass(frozen=True, slots=True)
class Effort:
    """What a transition tells the indicators beyond flow: sent on inflows and outflows."""

    transfers: int = 0  # queue changes since the ticket (re)opened, on an outflow
    turns: int = 0  # customer replies answered by an agent since (re)opening, on an outflow
    quick_reopen: bool = False  # a reopen within the reopen horizon of the last resolution
    ai_resolved: bool = False  # on an outflow: the resolution was by automation
    tags: tuple[str, ...] = ()  # the ticket's tags, on an inflow


NO_EFFORT = Effort()  # what an inflow or outflow sent without one (state of before) tells


@dataclass(frozen=True, slots=True)
class IndicatorWindows:
    """The indicator windows, in steps: the baseline (default 7d), the recent window drivers
    compare with it, and how far back deflection's window sits (its 48 hours to settle)."""

    baseline: int
    recent: int
    settle: int = 0


@dataclass(frozen=True, slots=True)
class Driver:
    tag: str
    recent: int
    recent_share: float
    baseline_share: float
    spike: bool


@dataclass(frozen=True, slots=True)
class IndicatorSnapshot:
    as_of_us: int
    scope: str
    resolutions: int
    reopen_rate: float
    first_response_p50_seconds: float
    first_response_p90_seconds: float
    responses: int
    transfers_per_resolved: float
    turns_per_resolved: float
    drivers: tuple[Driver, ...]
    recontact_rate: float = 0.0
    ai_resolutions: int = 0  # in the settled window: resolved at least 48 hours ago
    deflection_rate: float = 0.0

    @property
    def spiking(self) -> tuple[Driver, ...]:
        return tuple(d for d in self.drivers if d.spike)


@dataclass(slots=True)
class Bucket:
    """Counts of one step, or of a whole window when used as its running sums."""

    resolutions: int = 0
    quick_reopens: int = 0
    transfers: int = 0
    turns: int = 0
    inflow: int = 0
    tags: Counter[str] = field(default_factory=Counter)
    responses: list[int] = field(default_factory=list)  # seconds to first response (buckets)
    recontacts: int = 0
    ai_resolutions: int = 0
    undeflected: int = 0

    def add(self, other: Bucket, sign: int = 1) -> None:
        """Add (or with ``sign=-1`` take away) another's counts; responses are kept apart."""
        self.resolutions += sign * other.resolutions
        self.quick_reopens += sign * other.quick_reopens
        self.transfers += sign * other.transfers
        self.turns += sign * other.turns
        self.inflow += sign * other.inflow
        self.recontacts += sign * other.recontacts
        self.ai_resolutions += sign * other.ai_resolutions
        self.undeflected += sign * other.undeflected
        for tag, count in other.tags.items():
            self.tags[tag] += sign * count
            if not self.tags[tag]:
                del self.tags[tag]

    def keep_top_tags(self, count: int) -> None:
        """Keep the ``count`` most frequent tags, ties by name: what is kept depends on the
        counts alone, never on the order in which they arrived."""
        if len(self.tags) > count:
            ranked = sorted(self.tags.items(), key=lambda item: (-item[1], item[0]))
            self.tags = Counter(dict(ranked[:count]))


_NOTHING_MOVED = (None,) * 5  # a boundary of ``_slide_to`` no bucket enters or leaves at

# The tags of a transition's entry that has none: an entry is added to buckets and sums,
# never kept or changed, so its entries share one (a Counter each was 3% of ``report``).
_NO_TAGS: Counter[str] = Counter()


@dataclass(slots=True)
class ScopeIndicators:
    """Indicator state of one scope; it slides in step with the scope's flow boundaries."""

    scope: str
    buckets: dict[int, Bucket] = field(default_factory=dict)
    baseline: Bucket = field(default_factory=Bucket)
    recent: Bucket = field(default_factory=Bucket)
    settled: Bucket = field(default_factory=Bucket)  # the baseline window, ``settle`` earlier
    responses: SortedList = field(default_factory=SortedList)
    slid: int | None = None  # the last boundary index the sums include
    # What the last snapshot read, while nothing in the windows has moved since: a quiet
    # scope's boundaries (most of them at a short step) are read again only at their instant.
    last: IndicatorSnapshot | None = None

    def resolved(self, at_us: int, effort: Effort, step_us: int, windows: IndicatorWindows) -> None:
        entry = Bucket(
            1,
            0,
            effort.transfers,
            effort.turns,
            tags=_NO_TAGS,
            ai_resolutions=int(effort.ai_resolved),
        )
        self._count(at_us, entry, step_us, windows)

    def opened(self, at_us: int, effort: Effort, step_us: int, windows: IndicatorWindows) -> None:
        entry = Bucket(quick_reopens=int(effort.quick_reopen), inflow=1, tags=Counter(effort.tags))
        self._count(at_us, entry, step_us, windows)

    def responded(
        self, at_us: int, waited_us: int, step_us: int, windows: IndicatorWindows
    ) -> None:
        seconds = max(0, waited_us) // US_PER_SECOND
        self._count(at_us, Bucket(tags=_NO_TAGS, responses=[seconds]), step_us, windows)

    def recontacted(self, at_us: int, step_us: int, windows: IndicatorWindows) -> None:
        self._count(at_us, Bucket(tags=_NO_TAGS, recontacts=1), step_us, windows)

    def undeflected(self, at_us: int, step_us: int, windows: IndicatorWindows) -> None:
        self._count(at_us, Bucket(tags=_NO_TAGS, undeflected=1), step_us, windows)

    def snapshot(self, index: int, step_us: int, windows: IndicatorWindows) -> IndicatorSnapshot:
        """Slide the windows to boundary ``index`` and read the indicators there."""
        self._slide_to(index, windows)
        if self.last is not None:
            return replace(self.last, as_of_us=index * step_us)
        self.last = self._read(index * step_us)
        return self.last

    def _read(self, as_of_us: int) -> IndicatorSnapshot:
        base, recent, settled = self.baseline, self.recent, self.settled
        return IndicatorSnapshot(
            as_of_us,
            self.scope,
            base.resolutions,
            _ratio(base.quick_reopens, base.resolutions),
            _nearest_rank(self.responses, 50),
            _nearest_rank(self.responses, 90),
            len(self.responses),
            _ratio(base.transfers, base.resolutions),
            _ratio(base.turns, base.resolutions),
            _drivers(recent, base),
            _ratio(base.recontacts, base.resolutions),
            settled.ai_resolutions,
            _ratio(settled.ai_resolutions - settled.undeflected, settled.ai_resolutions),
        )

    def _windows(self, windows: IndicatorWindows) -> tuple[tuple[Bucket, int, int], ...]:
        """Each window's running sums with how far back it ends and how long it is, in steps."""
        return (
            (self.baseline, 0, windows.baseline),
            (self.recent, 0, windows.recent),
            (self.settled, windows.settle, windows.baseline),
        )

    def _slide_to(self, index: int, windows: IndicatorWindows) -> None:
        if self.slid is not None and index <= self.slid:
            return
        # Buckets stamped before the first boundary slide in silently, as in the flow.
        first = min(self.buckets, default=index) if self.slid is None else self.slid + 1
        buckets, length, settle = self.buckets, windows.baseline, windows.settle
        for current in range(min(first, index), index + 1):
            # What enters and leaves each window of ``_windows`` at this boundary, each sum
            # taking its entering bucket before its leaving one.
            entering = buckets.get(current)
            left_baseline = buckets.get(current - length)
            left_recent = buckets.get(current - windows.recent)
            settling = buckets.get(current - settle)
            left_settled = buckets.pop(current - settle - length, None)
            self.slid = current
            moved = (entering, left_baseline, left_recent, settling, left_settled)
            if moved == _NOTHING_MOVED:
                continue
            self.last = None
            if entering is not None:
                entering.keep_top_tags(TAGS_PER_STEP)  # before it joins any window
                self.baseline.add(entering)
                self.recent.add(entering)
                self.responses.update(entering.responses)
            if left_baseline is not None:
                self.baseline.add(left_baseline, -1)
                for seconds in left_baseline.responses:
                    self.responses.remove(seconds)
            if left_recent is not None:
                self.recent.add(left_recent, -1)
            if settling is not None:
                self.settled.add(settling)
            if left_settled is not None:
                self.settled.add(left_settled, -1)

    def _count(self, at_us: int, entry: Bucket, step_us: int, windows: IndicatorWindows) -> None:
        index = boundary_index(at_us, step_us)
        slid = self.slid
        if slid is not None and index <= slid - windows.settle - windows.baseline:
            return  # older than every window from now on
        bucket = self.buckets.get(index)
        if bucket is None:
            bucket = self.buckets[index] = Bucket()
        bucket.add(entry)
        bucket.responses += entry.responses
        if slid is None:
            return
        # Late: it joins the windows it falls in now; its bucket takes it out when it leaves.
        for sums, back, length in self._windows(windows):
            if slid - back - length < index <= slid - back:
                sums.add(entry, 1)
                self.last = None
        if slid - windows.baseline < index <= slid:
            self.responses.update(entry.responses)


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _nearest_rank(values: SortedList, percent: int) -> float:
    if not values:
        return 0.0
    rank = max(1, -(-percent * len(values) // 100))
    return float(values[rank - 1])


def _drivers(recent: Bucket, baseline: Bucket) -> tuple[Driver, ...]:
    """The top tags of recent inflow, with their share now and their usual share: over the
    baseline window before the recent one (a spike of days would otherwise be part of what
    it is compared with). No spike without inflow before the recent window."""
    ranked = sorted(recent.tags.items(), key=lambda item: (-item[1], item[0]))[:TOP_DRIVERS]
    before = baseline.inflow - recent.inflow
    drivers = []
    for tag, count in ranked:
        share = _ratio(count, recent.inflow)
        usual = _ratio(baseline.tags.get(tag, 0) - count, before)
        spike = before > 0 and count >= SPIKE_MIN_TICKETS and share >= SPIKE_FACTOR * usual
        drivers.append(Driver(tag, count, share, usual, spike))
    return tuple(drivers)
