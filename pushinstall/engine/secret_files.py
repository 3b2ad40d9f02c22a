"""The ledger of secret files written on targets and not yet known to be removed.

A `secret_file` (the passphrase for UnifiedAgentConfigurator, say) lives on the target only
while its program runs. When the link stalls after `write_secret`, the clean-up cannot reach
the host; the file must not stay there unnoticed. So before `write_secret` is sent, its path
is written here, in the controller's state dir (a file per host); a `remove_file` that answers
takes it off. Whatever is left is removed the next time the engine reaches that host, later
in the same run or in the next one, and a clean-up that fails is a warning event.

Paths only, never content: the ledger holds no secret.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

from pushinstall.paths import state_dir, write_atomic


def _ledger(host: str) -> Path:
    digest = hashlib.sha256(host.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return state_dir() / "secret-files" / f"{digest}.json"


def pending(host: str) -> list[str]:
    """The secret files on `host` not known to be removed."""
    try:
        data = json.loads(_ledger(host).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [p for p in data.get("paths", []) if isinstance(p, str)] \
        if isinstance(data, dict) else []


def _save(host: str, paths: list[str]) -> None:
    path = _ledger(host)
    if not paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    write_atomic(path, json.dumps({"host": host, "paths": paths}))   # never half a ledger


def add(host: str, remote_path: str) -> None:
    """Note a secret file about to be written on `host`."""
    paths = pending(host)
    if remote_path not in paths:
        _save(host, [*paths, remote_path])


def discard(host: str, remote_path: str) -> None:
    """`remote_path` on `host` is removed (or was never there)."""
    paths = pending(host)
    if remote_path in paths:
        _save(host, [p for p in paths if p != remote_path])
