"""Collect a run's events into one summary that the end-of-run reports render."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pushinstall.events import (
    Event,
    HostFinished,
    HostStarted,
    HostWarning,
    RebootEvent,
    RunFinished,
    RunStarted,
    StepResult,
)
from pushinstall.model import Status


@dataclass
class HostRecord:
    """Everything one host went through in a run."""

    name: str
    status: str = ""    # a Status once the host finished
    message: str = ""
    duration: float = 0.0
    counts: dict[Status, int] = field(default_factory=dict)
    steps: list[StepResult] = field(default_factory=list)
    reboots: list[RebootEvent] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class RunRecord:
    """A whole run: its start, its hosts in order, its end."""

    run_id: str = ""
    mode: str = ""
    playbook: str = ""
    started: float = 0.0
    hosts: dict[str, HostRecord] = field(default_factory=dict)
    finished: RunFinished | None = None

    def host(self, name: str) -> HostRecord:
        """The record of host `name`, made on first use."""
        return self.hosts.setdefault(name, HostRecord(name))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: run fields, totals, and each host with its steps."""
        return {
            "run_id": self.run_id,
            "mode": self.mode,
            "playbook": self.playbook,
            "started": self.started,
            "exit_code": self.finished.exit_code if self.finished else None,
            "duration": self.finished.duration if self.finished else None,
            "interrupted": self.finished.interrupted if self.finished else None,
            "totals": self.finished.totals if self.finished else {},
            "hosts": [
                {
                    "name": h.name,
                    "status": h.status,
                    "message": h.message,
                    "duration": h.duration,
                    "counts": h.counts,
                    "steps": [
                        {k: v for k, v in s.to_dict().items() if k not in ("kind", "host")}
                        for s in h.steps
                    ],
                    "reboots": [
                        {k: v for k, v in r.to_dict().items() if k not in ("kind", "host")}
                        for r in h.reboots
                    ],
                    "warnings": list(h.warnings),
                }
                for h in self.hosts.values()
            ],
        }


class Collector:
    """A sink that keeps a `RunRecord`; the end-of-run reports are built on it."""

    def __init__(self) -> None:
        self.record = RunRecord()

    def emit(self, event: Event) -> None:
        """Fold one event into the record."""
        record = self.record
        if isinstance(event, RunStarted):
            record.run_id, record.mode = event.run_id, event.mode
            record.playbook, record.started = event.playbook, event.time
            for name in event.hosts:
                record.host(name)
        elif isinstance(event, HostStarted):
            record.host(event.host)
        elif isinstance(event, StepResult):
            record.host(event.host).steps.append(event)
        elif isinstance(event, RebootEvent):
            record.host(event.host).reboots.append(event)
        elif isinstance(event, HostWarning):
            record.host(event.host).warnings.append(event.message)
        elif isinstance(event, HostFinished):
            host = record.host(event.host)
            host.status, host.message = event.status, event.message
            host.duration, host.counts = event.duration, dict(event.counts)
        elif isinstance(event, RunFinished):
            record.finished = event

    def close(self) -> None:
        """Nothing to release."""
