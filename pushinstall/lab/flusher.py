"""The lab's write-behind saver: one daemon thread per process saves the lab hosts that calls
changed, once a host has been quiet for `QUIET_SECONDS` (its client is likely done), any host
at least every `FLUSH_SECONDS`, and all of them at interpreter exit (`flush_all` does it now).
A forked child (an engine worker) starts with nothing to save: the parent saves what it had.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Protocol


class Flushable(Protocol):
    """What the flusher needs of a lab host (`lab.host.LabHost`)."""

    name: str
    last_call: float

    def flush(self, create: bool = ...) -> None:
        """Save the host's state now (`create`: make its folder if it is gone)."""

log = logging.getLogger(__name__)
FLUSH_SECONDS = 2.0
QUIET_SECONDS = 0.5


class Flusher:
    """Saves the process's dirty lab hosts (one daemon thread): a host that has been quiet for
    `QUIET_SECONDS` (its client is likely done), any other every `FLUSH_SECONDS`; and all of
    them at interpreter exit."""

    def __init__(self) -> None:
        self._dirty: dict[Flushable, float] = {}   # host -> when it became dirty
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._thread: threading.Thread | None = None

    def mark(self, host: Flushable) -> None:
        """`host` has changes to save."""
        with self._lock:
            self._dirty.setdefault(host, time.monotonic())
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="pushinstall-lab-flush",
                                                daemon=True)
                self._thread.start()
                atexit.register(self.flush_all)

    def after_fork(self) -> None:
        """In a forked child: nothing to save yet, no thread, fresh locks."""
        self._dirty = {}
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._thread = None

    def _loop(self) -> None:
        while True:
            time.sleep(QUIET_SECONDS / 2)
            self.flush_all(_due, create=False)   # a state dir removed meanwhile stays removed

    def flush_all(self, due: Callable[[Flushable, float], bool] | None = None,
                  create: bool = True) -> None:
        """Save every dirty host (`due` picks some) now; returns when they are saved (also
        those the flusher thread had already taken)."""
        with self._flushing:
            with self._lock:
                hosts = [h for h, since in self._dirty.items() if due is None or due(h, since)]
                for host in hosts:
                    del self._dirty[host]
            for host in hosts:
                try:
                    host.flush(create)
                except OSError as exc:  # a state dir removed under us: nothing left to keep
                    log.debug("%s: lab state not saved: %s", host.name, exc)


def _due(host: Flushable, since: float) -> bool:
    """The flusher's rule: quiet for QUIET_SECONDS, or dirty for FLUSH_SECONDS."""
    now = time.monotonic()
    return now - host.last_call >= QUIET_SECONDS or now - since >= FLUSH_SECONDS


FLUSHER = Flusher()
os.register_at_fork(after_in_child=FLUSHER.after_fork)


def flush_all() -> None:
    """Save every lab host of this process that has unsaved changes, now."""
    FLUSHER.flush_all()

