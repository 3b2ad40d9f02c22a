"""Events: what a run reports while it goes. Engine produces them; report sinks consume them.

Every event is a plain dataclass with `kind` and `time` (epoch seconds); `to_dict()` gives the
JSON form the JSONL sink writes. Secrets never go into events: messages are redacted before an
event is made.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from pushinstall.model import Status


@dataclass
class Event:
    """Base of all events."""

    kind: str = field(init=False, default="event")
    time: float = field(init=False, default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-ready data."""
        return asdict(self)


@dataclass
class RunStarted(Event):
    """A run or check begins."""

    run_id: str
    mode: str                 # "run" | "check"
    playbook: str
    hosts: list[str]
    groups: dict[str, list[str]] = field(default_factory=dict)   # host -> its groups
    options: dict[str, Any] = field(default_factory=dict)        # forks, limit, check_mode ...

    def __post_init__(self) -> None:
        self.kind = "run_started"


@dataclass
class HostStarted(Event):
    """Work on one host begins."""

    host: str

    def __post_init__(self) -> None:
        self.kind = "host_started"


@dataclass
class StepResult(Event):
    """One step's outcome on one host: ok, changed, failed, skipped, or (check) drifted."""

    host: str
    step: str
    status: Status
    diff: str = ""
    message: str = ""
    duration: float = 0.0
    log_tail: list[str] = field(default_factory=list)   # last output lines of a failed process

    def __post_init__(self) -> None:
        self.kind = "step_result"


@dataclass
class StepStarted(Event):
    """A step's apply begins on one host (check mode has none): the live console shows it."""

    host: str
    step: str

    def __post_init__(self) -> None:
        self.kind = "step_started"


@dataclass
class RebootEvent(Event):
    """A host was restarted because a step needed it."""

    host: str
    step: str
    boot_time_before: str = ""
    boot_time_after: str = ""
    duration: float = 0.0

    def __post_init__(self) -> None:
        self.kind = "reboot"


@dataclass
class HostWarning(Event):
    """Something an admin must act on that did not fail the host (a secret file that could
    not be removed from it, say)."""

    host: str
    message: str

    def __post_init__(self) -> None:
        self.kind = "warning"


@dataclass
class HostFinished(Event):
    """Work on one host ended with a final status and per-status step counts."""

    host: str
    status: Status
    counts: dict[Status, int] = field(default_factory=dict)
    message: str = ""
    duration: float = 0.0
    # os, os_version, powershell, agent_build, configuration_server (None: not installed, not
    # registered, or not looked at); {} when the host was never reached
    facts: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.kind = "host_finished"


@dataclass
class RunFinished(Event):
    """The run ended: hosts per final status, the exit code, the wall time."""

    run_id: str
    totals: dict[str, int] = field(default_factory=dict)
    exit_code: int = 0
    duration: float = 0.0
    interrupted: bool = False

    def __post_init__(self) -> None:
        self.kind = "run_finished"


class Sink(Protocol):
    """Consumes events as they happen; `close()` at the end (also after an interrupt)."""

    def emit(self, event: Event) -> None:
        """Take one event. Must be quick and must not raise for a bad host."""

    def close(self) -> None:
        """Flush and release."""


Emit = Callable[[Event], None]   # where a producer sends its events (the engine's bus)
