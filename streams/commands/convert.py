"""``flowgauge convert KIND FILE...``: saved webhook bodies and history exports of a helpdesk
into our events, as JSONL sorted by ``occurred_at`` (stable: equal instants keep the order of
the inputs), ready for ``report`` or ``replay``.

Each file is one JSON document or JSONL. What cannot be mapped is listed on standard error
with its file, position and reason. Exit 0: everything converted; 1: some items skipped;
2: a file could not be read as JSON at all.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from streams.commands.files import replacing
from streams.connectors.base import Connector, Delivery, Ignored, Unmappable, event_json
from streams.core.events import TicketEvent


class Unreadable(Exception):
    """A file that is neither a JSON document nor JSONL."""


@dataclass
class Conversion:
    events: list[TicketEvent] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "file:position: reason"
    ignored: int = 0


def documents(path: Path) -> Iterator[tuple[str, Any]]:
    """(position, document): the whole file, or each non-empty line of JSONL."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise Unreadable(f"{path}: cannot be read: {exc}") from None
    try:
        yield "document", json.loads(text)
        return
    except ValueError:  # not one document; JSONL, perhaps
        pass
    lines = [(number, line) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    parsed = []
    for number, line in lines:
        try:
            parsed.append((f"line {number}", json.loads(line)))
        except (ValueError, RecursionError) as exc:
            if not parsed:
                raise Unreadable(f"{path}: neither JSON nor JSONL ({exc})") from None
            parsed.append((f"line {number}", Unmappable(f"not JSON: {exc}")))
    yield from parsed


def convert(
    connector: Connector, paths: list[Path], event: str | None, ticket: str | None = None
) -> Conversion:
    conversion = Conversion()
    for path in paths:
        for position, document in documents(path):
            where = f"{path}:{position}"
            try:
                if isinstance(document, Unmappable):
                    raise document
                deliveries = connector.saved(document, ticket)
            except Unmappable as exc:
                conversion.skipped.append(f"{where}: {exc}")
                continue
            for index, delivery in enumerate(deliveries):
                named = (
                    delivery if delivery.event or event is None else replace(delivery, event=event)
                )
                _convert_one(connector, named, f"{where}[{index}]", conversion)
    conversion.events.sort(key=lambda item: item.occurred_us)
    return conversion


def _convert_one(
    connector: Connector, delivery: Delivery, where: str, conversion: Conversion
) -> None:
    try:
        mapped = connector.events(delivery)
    except Unmappable as exc:
        conversion.skipped.append(f"{where}: {exc}")
        return
    if isinstance(mapped, Ignored):
        conversion.ignored += 1
    else:
        conversion.events.extend(mapped)


def write(events: list[TicketEvent], out: IO[bytes]) -> None:
    for event in events:
        out.write(event_json(event) + b"\n")


def run_convert(
    connector: Connector,
    paths: list[Path],
    event: str | None,
    ticket: str | None,
    output: Path | None,
) -> int:
    try:
        conversion = convert(connector, paths, event, ticket)
    except Unreadable as exc:
        print(f"flowgauge convert: {exc}", file=sys.stderr)
        return 2
    if output is None:
        write(conversion.events, sys.stdout.buffer)
        sys.stdout.flush()
    else:
        with replacing(output, "wb") as out:
            write(conversion.events, out)
    for line in conversion.skipped:
        print(f"{line}: skipped", file=sys.stderr)
    print(
        f"{len(conversion.events)} events, {len(conversion.skipped)} skipped,"
        f" {conversion.ignored} ignored (nothing flowgauge counts)",
        file=sys.stderr,
    )
    return 1 if conversion.skipped else 0
