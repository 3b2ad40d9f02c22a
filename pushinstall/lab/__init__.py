"""Simulated Windows hosts that answer the op protocol (docs/ops.md) exactly as agent.ps1 does.

`LabHost` is one host; `lab_host` shares one object per (state dir, name) in a process, so
every transport and endpoint of a run sees the same machine. State lives under
`<state dir>/lab/`, saved write-behind (`flush_all` saves now); `reset_lab` starts hosts
fresh. docs/lab.md lists the `lab:` host vars.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import Any

from pushinstall import paths
from pushinstall.lab.flusher import flush_all
from pushinstall.lab.host import LabHost, state_file

_HOSTS: dict[tuple[Path, str], LabHost] = {}
_HOSTS_LOCK = threading.Lock()
_RESOLVED: dict[Path, Path] = {}


def lab_host(name: str, lab_vars: dict[str, Any] | None = None,
             state_dir: Path | None = None) -> LabHost:
    """The process's one LabHost for (state dir, name); its per-call settings are refreshed
    from `lab_vars`, its starting state is what the state file holds."""
    given = state_dir or paths.state_dir()
    with _HOSTS_LOCK:
        directory = _RESOLVED.get(given)
        if directory is None:
            directory = _RESOLVED[given] = given.resolve()
        host = _HOSTS.get((directory, name))
    if host is not None:
        host.update_vars(lab_vars)
        return host
    # Made outside the lock: loading a state file under it kept 100 connecting threads in
    # one queue. Two threads that race for one name keep the first one made.
    made = LabHost(name, lab_vars, directory)
    with _HOSTS_LOCK:
        host = _HOSTS.setdefault((directory, name), made)
    if host is not made:
        host.update_vars(lab_vars)
    return host


def reset_lab(state_dir: Path, names: list[str] | None = None) -> int:
    """Start lab hosts fresh (all of them when `names` is None); returns how many state files
    were removed. Hosts shared in this process start fresh at once."""
    lab_dir = state_dir / "lab"
    directory = state_dir.resolve()
    if names is None:
        paths = sorted(lab_dir.glob("*.json")) if lab_dir.is_dir() else []
        with _HOSTS_LOCK:
            shared = [h for (d, _), h in _HOSTS.items() if d == directory]
    else:
        paths = [state_file(state_dir, name) for name in names]
        with _HOSTS_LOCK:
            shared = [_HOSTS[(directory, n)] for n in names if (directory, n) in _HOSTS]
    count = 0
    for path in paths:
        if path.exists():
            path.unlink()
            count += 1
        shutil.rmtree(path.with_suffix(".files"), ignore_errors=True)
    for host in shared:
        host.reset()
    return count


def _after_fork() -> None:
    """A forked child (an engine worker) starts with fresh locks: a lock another thread of the
    parent held at the fork would otherwise stay held forever."""
    global _HOSTS_LOCK
    _HOSTS_LOCK = threading.Lock()
    for host in _HOSTS.values():
        host.after_fork()


os.register_at_fork(after_in_child=_after_fork)

__all__ = ["LabHost", "flush_all", "lab_host", "reset_lab"]
