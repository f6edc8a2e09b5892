"""The files a command writes: checked before any work, and written whole or not at all.

Opening a file for writing empties it. So an output that is also an input (``report
events.jsonl --output events.jsonl``) would destroy the input, two outputs naming one file
would interleave, and a run stopped halfway (Ctrl-C, a full disk, an error) would leave a
file with a good header and whole rows that only looks complete. Each output is therefore
written under a temporary name beside it and renamed over the named file once the command
completes; a run that fails leaves what was there before.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any


class RefusedOutput(Exception):
    """An output the command will not write: one line says why."""


def check_outputs(outputs: Iterable[Path | None], inputs: Iterable[Path] = ()) -> None:
    """Refuse, before any work, an output that is one of ``inputs`` or named twice, and one
    that cannot be created where it is named."""
    named = [path for path in outputs if path is not None]
    read = list(inputs)
    for number, path in enumerate(named):
        if path.is_dir():
            raise RefusedOutput(f"{path} is a directory")
        if path.exists() and not path.is_file():
            continue  # a device or a pipe (/dev/null): nothing in it to destroy
        for other in read:
            if _same_file(path, other):
                raise RefusedOutput(f"{path} is also an input: writing it would destroy it")
        for other in named[:number]:
            if _same_file(path, other):
                raise RefusedOutput(f"{other} and {path} are the same file")
        if not path.parent.is_dir():
            raise RefusedOutput(f"cannot write {path}: no directory {path.parent}")


@contextlib.contextmanager
def replacing(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """``path`` open for writing under a temporary name beside it, renamed over ``path``
    when the block completes and removed when it fails. A device or a pipe (``/dev/null``,
    ``/dev/stdout``) is written as it is: it has no contents to keep, and is no file to
    replace."""
    if path.exists() and not path.is_file():
        with path.open(mode, **_text(mode)) as out:
            yield out
        return
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, mode, **_text(mode)) as out:
            yield out
        os.chmod(temporary, _mode_for(path))
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _text(mode: str) -> dict[str, Any]:
    return {} if "b" in mode else {"encoding": "utf-8", "newline": ""}


def _mode_for(path: Path) -> int:
    """The permissions the file keeps, or those a new file gets (``mkstemp`` makes 0600)."""
    with contextlib.suppress(FileNotFoundError):
        return stat.S_IMODE(path.stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _same_file(one: Path, other: Path) -> bool:
    if one.exists() and other.exists():
        return os.path.samefile(one, other)
    return one.resolve() == other.resolve()
