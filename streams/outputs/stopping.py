"""How a serving process stops: asked by a service manager (SIGTERM, what Kubernetes sends), a
closed terminal (SIGHUP) or Ctrl-C alike, through its own ending, so that the requests in
flight are answered and what was produced is flushed. Python's default for SIGTERM ends the
process at once, mid-request."""

from __future__ import annotations

import asyncio
import signal

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def stop_requested() -> asyncio.Event:
    """An event set once the process is asked to stop; from within the running loop."""
    requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in STOP_SIGNALS:
        loop.add_signal_handler(number, requested.set)
    return requested
