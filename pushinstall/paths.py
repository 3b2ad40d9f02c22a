"""Where pushinstall keeps state on the controller: run logs, history, lab hosts."""

from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    """`PUSHINSTALL_STATE_DIR`, else `$XDG_STATE_HOME/pushinstall`, else
    `~/.local/state/pushinstall`."""
    if os.environ.get("PUSHINSTALL_STATE_DIR"):
        return Path(os.environ["PUSHINSTALL_STATE_DIR"])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "pushinstall"
