"""Deadlines for a transport's I/O: the one a host's work runs under, and the watchdog that
ends a socket exchange when its time is up.

A read timeout bounds each `recv`, not an answer: a server that drips one byte a second
never meets it. So the engine says once, for the thread doing a host's work, when that work
must end (`io_deadline`), and a transport arms the `WATCHDOG` for every exchange with the
sooner of that and its own bound; at that moment the watchdog calls the exchange's `cut`
(which shuts its socket), and the blocked read returns at once.
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import itertools
import math
import os
import threading
import time
from collections.abc import Callable, Iterator

COMPACT_MIN = 4096   # alarms kept before the ended ones are swept out of the heap
_DEADLINE: contextvars.ContextVar[float] = contextvars.ContextVar("io_deadline",
                                                                 default=math.inf)


@contextlib.contextmanager
def io_deadline(at: float) -> Iterator[None]:
    """Every transport exchange this thread starts inside ends by `at` (`time.monotonic()`
    time; `math.inf` for none)."""
    token = _DEADLINE.set(at)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def io_deadline_at() -> float:
    """When this thread's transport I/O must end (`math.inf`: no deadline)."""
    return _DEADLINE.get()


class Alarm:
    """One armed exchange: `disarm()` when it ends; it says whether the cut came first."""

    def __init__(self, cut: Callable[[], None]) -> None:
        self._cut = cut
        self._lock = threading.Lock()
        self._state = "armed"

    def fire(self) -> None:
        """Cut the exchange, unless it already ended (called by the watchdog)."""
        with self._lock:
            if self._state != "armed":
                return
            self._state = "fired"
        with contextlib.suppress(Exception):
            self._cut()

    @property
    def disarmed(self) -> bool:
        """True once the exchange ended (or was cut): nothing left to fire."""
        return self._state != "armed"

    def disarm(self) -> bool:
        """The exchange ended; True when it was cut."""
        with self._lock:
            fired = self._state == "fired"
            self._state = "done"
        return fired


class Watchdog:
    """One thread per process that fires alarms at their times (a heap, not a thread per
    exchange: a fleet makes thousands of exchanges a second)."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)   # worker processes start afresh

    def _reset(self) -> None:
        self._wake = threading.Condition()
        self._heap: list[tuple[float, int, Alarm]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._compact_at = COMPACT_MIN

    def arm(self, at: float, cut: Callable[[], None]) -> Alarm:
        """An alarm that calls `cut` at `at` (monotonic) unless disarmed first."""
        alarm = Alarm(cut)
        with self._wake:
            if len(self._heap) >= self._compact_at:   # most ended long before their time
                self._heap = [entry for entry in self._heap if not entry[2].disarmed]
                heapq.heapify(self._heap)
                self._compact_at = max(COMPACT_MIN, 2 * len(self._heap))
            heapq.heappush(self._heap, (at, next(self._order), alarm))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="pushinstall-watchdog",
                                                daemon=True)
                self._thread.start()
            if self._heap[0][2] is alarm:   # the thread sleeps until a later one: wake it
                self._wake.notify()
        return alarm

    def _loop(self) -> None:
        while True:
            with self._wake:
                while self._heap and self._heap[0][2].disarmed:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._wake.wait()
                    continue
                at, _, alarm = self._heap[0]
                wait = at - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                heapq.heappop(self._heap)
            alarm.fire()


WATCHDOG = Watchdog()
