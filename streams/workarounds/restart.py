"""Restart the worker in place, as after a kill -9.

It resumes from its changelogs and the committed offsets, so nothing is lost or counted
twice: what the fault tests prove of a kill -9 and a restart.

The way out that ``gaps`` (a skipped message found in the log) and ``stall`` (an intake
that stands still) take; it goes when neither needs it.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn


def restart_worker() -> NoReturn:
    """Replace this process with a fresh ``flowgauge worker`` of the same arguments."""
    logging.shutdown()
    os.execv(sys.executable, [sys.executable, "-m", "streams.commands.cli", *sys.argv[1:]])
