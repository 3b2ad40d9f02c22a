"""Where pushinstall keeps state on the controller: run logs, history, lab hosts."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def state_dir() -> Path:
    """`PUSHINSTALL_STATE_DIR`, else `$XDG_STATE_HOME/pushinstall`, else
    `~/.local/state/pushinstall`."""
    if os.environ.get("PUSHINSTALL_STATE_DIR"):
        return Path(os.environ["PUSHINSTALL_STATE_DIR"])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "pushinstall"


class NotARegularFile(OSError):
    """A file to write in one rename exists, and is something else than a regular file."""


def write_atomic(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` in one rename, making its folder when missing: a reader,
    or a run killed mid-write, sees the old file or the new one, never half of one.

    Raises `NotARegularFile` when `path` exists and is not a regular file: the rename would put
    the text in place of a device, FIFO or socket (run as root, of /dev/null itself)."""
    if path.exists() and not path.is_file():
        raise NotARegularFile(f"{path} exists and is not a regular file")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
