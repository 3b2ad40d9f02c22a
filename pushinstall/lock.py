"""One run at a time per state dir + inventory + playbook: a `flock` on a file in the state dir.

Two `run`s started 0.3 s apart on the same hosts would both install; the second now stops at
once (exit 3, `EXIT_LOCKED`) naming the holder, or waits up to `--wait-lock` seconds. The kernel
releases a flock when its holder dies, however it dies, so a killed run never leaves a stale
lock behind (a pid file would).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from pathlib import Path
from types import TracebackType

from pushinstall.errors import LockHeld

POLL_S = 0.2


def lock_path(state_dir: Path, inventories: list[str], playbook: str) -> Path:
    """The lock file for this inventory + playbook pair (paths resolved, order ignored)."""
    key = json.dumps([sorted(str(Path(i).resolve()) for i in inventories),
                      str(Path(playbook).resolve())])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return state_dir / "locks" / f"{Path(playbook).stem}-{digest}.lock"


class RunLock:
    """`with RunLock(path, wait_s, what):` holds the lock for the block; `LockHeld` if another
    process holds it longer than `wait_s` (0: do not wait)."""

    def __init__(self, path: Path, wait_s: float = 0.0, description: str = "") -> None:
        self.path = path
        self.wait_s = wait_s
        self.description = description
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
                    os.close(fd)
                    waited = f" after waiting {self.wait_s:g}s" if self.wait_s else ""
                    raise LockHeld(
                        f"another run on the same inventory and playbook holds the lock"
                        f"{waited} ({holder or 'holder unknown'}; lock file {self.path}); "
                        f"it ends by itself, or pass --wait-lock SECONDS to wait") from None
                time.sleep(POLL_S)
        # who holds it, for the message the next one prints (data only, never read back as code)
        os.ftruncate(fd, 0)
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        holder = f"pid {os.getpid()} since {since}"
        if self.description:
            holder += f": {self.description}"
        os.pwrite(fd, holder.encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self.fd is not None:
            os.close(self.fd)    # closing the descriptor releases the flock
            self.fd = None
