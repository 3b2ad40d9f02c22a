"""Small helpers every lab module uses: the op error to raise, the clock, traffic counters."""

from __future__ import annotations

import datetime as dt
import functools
import time
from dataclasses import dataclass
from typing import NoReturn

from pushinstall.errors import RemoteOpFailed


def fail(error_type: str, message: str) -> NoReturn:
    """Stop the current op: it answers `{"ok": false, "error": {error_type, message}}`.

    The lab raises the same `RemoteOpFailed` a controller sees for that answer, so the one
    exception tree (errors.py) covers the simulated host too."""
    raise RemoteOpFailed(message, error_type=error_type)


def iso(moment: dt.datetime) -> str:
    """`moment` as the protocol writes times: ISO 8601 UTC, seconds."""
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_iso() -> str:
    """The current time as the protocol writes it."""
    return _second_iso(int(time.time()))


@functools.lru_cache(maxsize=4)
def _second_iso(second: int) -> str:
    return iso(dt.datetime.fromtimestamp(second, dt.timezone.utc))


def parse_iso(text: str) -> dt.datetime:
    """Inverse of `iso`."""
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)


@dataclass
class HostCounters:
    """Traffic one lab host has seen on an endpoint's ports (WS-Man or SSH), for benchmarks."""

    connections: int = 0
    requests: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    open_connections: int = 0  # now, not a total: a run that closed its sessions leaves 0
