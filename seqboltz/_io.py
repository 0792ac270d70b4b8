"""Atomic file writes: the one helper every output of seqboltz goes through.

A file either appears whole under its final name or not at all: it is written to a temporary
file in the same directory, flushed, given the mode an ordinary ``open(path, "w")`` would give
it (``0o666`` less the process umask; ``mkstemp`` alone would leave ``0o600``), and moved into
place with :func:`os.replace`. On any error the temporary file is removed and an existing file
of that name is left untouched. Torch-free.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_path", "atomic_write", "current_umask", "file_mode"]

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    with _UMASK_LOCK:  # elsewhere: set and restore, serialised within this process
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a newly created regular file gets: ``0o666 & ~umask``."""
    return 0o666 & ~current_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    For writers that want a file name rather than a file object (``soundfile.write``,
    ``PIL.Image.save``, ``matplotlib``'s ``savefig``). ``suffix`` keeps the extension such
    writers read the format from. Parent directories are created.

    >>> with atomic_path("out/a.wav", suffix=".wav") as tmp:  # doctest: +SKIP
    ...     soundfile.write(tmp, wave, 16000)
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=suffix or ".tmp", dir=target.parent
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, file_mode())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(
    path: str | os.PathLike[str],
    write: Callable[[IO[Any]], object],
    *,
    text: bool = False,
    fsync: bool = False,
) -> Path:
    """Write ``path`` atomically through ``write(file_object)``; returns the path.

    Args:
        path: the final file name; parent directories are created.
        write: called once with the open temporary file (binary, or text with ``text=True``:
            UTF-8, ``\\n`` line ends).
        text: open the temporary file in text mode.
        fsync: flush to disk before the rename (for caches that must survive a crash).
    """
    target = Path(path)
    with atomic_path(target) as tmp:
        opener = (
            (lambda: open(tmp, "w", encoding="utf-8", newline="\n"))
            if text
            else (lambda: open(tmp, "wb"))
        )
        with opener() as fh:
            write(fh)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
    return target
