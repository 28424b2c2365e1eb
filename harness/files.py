"""Writing files so that a reader never sees a half-written one (one helper for the harness).

:func:`atomic_write_text` writes into a temporary file in the target's folder (the same file
system) and moves it into place with :func:`os.replace`; on any error, or an interrupt, the
temporary file is removed and the target is as it was. :func:`atomic_symlink` replaces a
symbolic link the same way. (``reference/`` keeps its own copy for its cache: it must not
import the harness.)
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write_text(path: Path | str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path`` and move it into place at once."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def atomic_symlink(link: Path | str, target: str) -> None:
    """Make ``link`` a symbolic link to ``target`` (relative or absolute), replacing it atomically."""
    link = Path(link)
    temporary = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    if temporary.is_symlink() or temporary.exists():
        temporary.unlink()
    os.symlink(target, temporary)
    try:
        os.replace(temporary, link)
    except BaseException:
        if temporary.is_symlink():
            temporary.unlink()
        raise
