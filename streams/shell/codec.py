"""The codec of flowgauge's internal topics (table changelogs and the scope repartition topic).

State is pickled for speed, but loaded with an unpickler that builds only the
classes listed here (and a Clock through ``clock_of``): a record written by anyone
else cannot run code. The writer reduces dataclasses itself, in the form pickle's own
writer uses, so state written before it loads the same. A scope's held-back transitions
are left out of its aging index: the scope stage writes them apart (``ScopeAging.seal``).
So is what its pull list has yet to read (``ScopeAging.touched``).
"""

from __future__ import annotations

import copyreg
import dataclasses
import io
import operator
import pickle
from collections import Counter, deque
from collections.abc import Callable
from typing import IO, Any

from faust.serializers import codecs
from sortedcontainers import SortedList

from streams.core.aging import AgeCounts, AgingSnapshot, OpenTicket, ScopeAging
from streams.core.alerts import (
    AlertState,
    AlertTransition,
    Hysteresis,
    IndicatorRules,
    InflowAboveOutflow,
)
from streams.core.catalog import Catalog, Undecided
from streams.core.crossing import Crossing
from streams.core.flow import FlowSnapshot, ScopeFlow
from streams.core.forecast import DayHistory, Forecast
from streams.core.indicators import Bucket, Driver, Effort, IndicatorSnapshot, ScopeIndicators
from streams.core.positions import SourceLog
from streams.core.pull import Pick, PullList
from streams.core.recontact import Contact, ContactKind, Opening, Requester, Resolution
from streams.core.scope import Emitted, ScopeState
from streams.core.sla import (
    Clock,
    FlatTargetClock,
    SlaChange,
    SlaState,
    Target,
    TargetClock,
    Targets,
)
from streams.core.stages import (
    Contacts,
    DimensionDeltas,
    PartitionRecord,
    Progress,
    Relay,
    RequesterPartitionRecord,
    Resume,
    ScopeDelta,
    ScopeRecord,
)
from streams.core.ticket import Kind, Status, Ticket, Traits, Transition
from streams.core.watermark import PartitionProgress, Watermarks

NAME = "flowgauge-state"
_STATE_CLASSES: tuple[type, ...] = (
    AgeCounts,
    AgingSnapshot,
    OpenTicket,
    ScopeAging,
    AlertState,
    AlertTransition,
    InflowAboveOutflow,
    Crossing,
    FlowSnapshot,
    ScopeFlow,
    DayHistory,
    Forecast,
    PullList,
    Pick,
    Emitted,
    ScopeState,
    PartitionRecord,
    Progress,
    ScopeDelta,
    ScopeRecord,
    DimensionDeltas,
    Catalog,
    Undecided,
    Kind,
    Status,
    Ticket,
    Traits,
    Transition,
    PartitionProgress,
    Watermarks,
    SortedList,
    Clock,
    TargetClock,
    Targets,
    Target,
    SlaState,
    SlaChange,
    Hysteresis,
    IndicatorRules,
    Bucket,
    Driver,
    Effort,
    IndicatorSnapshot,
    ScopeIndicators,
    Counter,
    deque,
    Contact,
    SourceLog,
    ContactKind,
    Requester,
    Opening,
    Resolution,
    Contacts,
    Relay,
    RequesterPartitionRecord,
    Resume,
)
_BUILTINS = {"dict", "list", "set", "frozenset", "tuple", "str", "int", "float", "bool"}
ALLOWED = {("builtins", name) for name in _BUILTINS} | {
    (cls.__module__, cls.__qualname__) for cls in _STATE_CLASSES
}
ALLOWED.add((__name__, "clock_of"))  # how a Clock is written: see _flat_clock
ALLOWED.add(("datetime", "date"))  # a forecast's dates
# Until the modules moved into packages (core, shell, ...), each sat directly under
# ``streams``, and state written then names them there: ``streams.ticket`` is now
# ``streams.core.ticket``, ``streams.codec`` this module.
_MOVED = {
    "streams." + module.rpartition(".")[2]: module
    for module, _ in ALLOWED
    if module.startswith("streams.")
}


def _state_values(state: Any, names: list[str]) -> dict[str, Any]:
    """Field values from any of pickle's forms: a dict (plain class), (dict, slots dict)
    (class with slots), or a list in field order (frozen dataclass with slots)."""
    if isinstance(state, dict):
        return state
    if isinstance(state, tuple):
        instance, slots = state
        return {**(instance or {}), **(slots or {})}
    return dict(zip(names, state, strict=False))


def _fill_defaults(cls: type) -> None:
    """Let ``cls`` load state written before its newest fields existed: a field missing
    from the pickle takes its default (new fields are added last, with a default)."""
    fields = dataclasses.fields(cls)
    names = [f.name for f in fields]

    def setstate(self: Any, state: Any) -> None:
        if type(state) is list and len(state) == len(names):  # as written now: in field order
            for name, value in zip(names, state, strict=True):
                object.__setattr__(self, name, value)
            return
        values = _state_values(state, names)
        for f in fields:
            if f.name in values:
                value = values[f.name]
            elif f.default is not dataclasses.MISSING:
                value = f.default
            elif f.default_factory is not dataclasses.MISSING:
                value = f.default_factory()
            else:
                raise pickle.UnpicklingError(f"{cls.__name__}.{f.name} missing from the state")
            object.__setattr__(self, f.name, value)

    cls.__setstate__ = setstate  # type: ignore[attr-defined]


for _cls in _STATE_CLASSES:
    if dataclasses.is_dataclass(_cls):
        _fill_defaults(_cls)


class StateUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        module = _MOVED.get(module, module)
        if (module, name) not in ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a state topic")
        return super().find_class(module, name)


def _field_values(cls: type) -> Callable[[Any], list[Any]]:
    """The values of a dataclass's fields, in order, read in C."""
    names = [f.name for f in dataclasses.fields(cls)]
    read = operator.attrgetter(*names)
    if len(names) == 1:
        return lambda obj: [read(obj)]
    return lambda obj: list(read(obj))


def _reducer(cls: type) -> Callable[[Any], tuple[Any, ...]]:
    values = _field_values(cls)
    # pickle's own reduction of an object with state: NEWOBJ, then BUILD from the values.
    newobj = copyreg.__newobj__  # type: ignore[attr-defined]
    return lambda obj: (newobj, (cls,), values(obj))


def clock_of(
    at_us: int, targets: Targets, response: FlatTargetClock, resolution: FlatTargetClock
) -> Clock:
    return Clock.of_flat(at_us, targets, response, resolution)


def _flat_clock(clock: Clock) -> tuple[Any, ...]:
    """A clock as one call (``Clock.flat``), not a reducer call per object."""
    return clock_of, clock.flat()


_REDUCERS: dict[type, Callable[[Any], tuple[Any, ...]]] = {
    cls: _reducer(cls) for cls in _STATE_CLASSES if dataclasses.is_dataclass(cls)
}
_REDUCERS[Clock] = _flat_clock


def _without_held_back(reduce: Callable[[Any], tuple[Any, ...]]) -> Callable[[Any], Any]:
    """ScopeAging's reducer, leaving out the held-back transitions: they are written apart,
    in segments (``ScopeAging.seal``), and put back by ``ScopeAging.restore``. Nor does it
    write which tickets the pull list has yet to read (``touched``): that is the process's,
    and a loaded index is read afresh."""
    names = [f.name for f in dataclasses.fields(ScopeAging)]
    pending, touched = names.index("pending"), names.index("touched")

    def reducer(aging: ScopeAging) -> tuple[Any, ...]:
        newobj, args, values = reduce(aging)
        values[pending], values[touched] = [], None
        return newobj, args, values

    return reducer


_REDUCERS[ScopeAging] = _without_held_back(_REDUCERS[ScopeAging])


class StatePickler(pickle.Pickler):
    """Writes a dataclass as pickle does a frozen one with slots, the values in field order
    (so ``loads`` reads it as before), but without ``dataclasses.fields`` per object: that
    lookup made up a third of writing a scope's state."""

    def __init__(self, file: IO[bytes]) -> None:
        super().__init__(file, protocol=5)
        self.dispatch_table = _REDUCERS


def loads(data: bytes) -> Any:
    return StateUnpickler(io.BytesIO(data)).load()


def dumps(value: Any) -> bytes:
    out = io.BytesIO()
    StatePickler(out).dump(value)
    return out.getvalue()


class StateCodec(codecs.Codec):
    def _loads(self, s: bytes) -> Any:
        return loads(s)

    def _dumps(self, s: Any) -> bytes:
        return dumps(s)


def register() -> None:
    codecs.register(NAME, StateCodec())
