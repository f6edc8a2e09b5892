"""The semantics in plain Python: events, tickets, windows, aging, SLA clocks, indicators,
alert rules, watermarks and the stages as functions over a batch. No I/O library, and no
other ``streams`` package."""
