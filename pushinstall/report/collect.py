"""Collect a run's events into one summary that the end-of-run reports render."""

from __future__ import annotations

import time
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
    groups: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunRecord:
    """A whole run: its start, its hosts in order, its end."""

    run_id: str = ""
    mode: str = ""
    playbook: str = ""
    started: float = 0.0
    hosts: dict[str, HostRecord] = field(default_factory=dict)
    finished: RunFinished | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def host(self, name: str) -> HostRecord:
        """The record of host `name`, made on first use."""
        return self.hosts.setdefault(name, HostRecord(name))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (docs/report-schema.json): run fields, totals, and each host with
        its steps. Times are ISO 8601 UTC; `started_epoch` keeps the number for tools."""
        finished = self.finished
        return {
            "schema": REPORT_SCHEMA,
            "run_id": self.run_id,
            "mode": self.mode,
            "playbook": self.playbook,
            "started": iso(self.started),
            "started_epoch": self.started,
            "finished": iso(finished.time) if finished else None,
            "exit_code": finished.exit_code if finished else None,
            "duration": finished.duration if finished else None,
            "interrupted": finished.interrupted if finished else True,
            "options": self.options,
            "totals": finished.totals if finished else {},
            "hosts": [
                {
                    "name": h.name,
                    "groups": h.groups,
                    "status": h.status,
                    "message": h.message,
                    "duration": h.duration,
                    "counts": h.counts,
                    "facts": h.facts,
                    "steps": [_step_dict(s) for s in h.steps],
                    "reboots": [
                        {"step": r.step, "at": iso(r.time), "duration": r.duration,
                         "boot_time_before": r.boot_time_before,
                         "boot_time_after": r.boot_time_after}
                        for r in h.reboots
                    ],
                    "warnings": list(h.warnings),
                }
                for h in self.hosts.values()
            ],
        }


REPORT_SCHEMA = 1


def iso(epoch: float | None) -> str | None:
    """`2026-12-01T02:00:13.120Z` (UTC), or None."""
    if not epoch:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}Z"


def _step_dict(step: StepResult) -> dict[str, Any]:
    return {"step": step.step, "status": step.status, "diff": step.diff,
            "message": step.message, "duration": step.duration, "at": iso(step.time),
            "log_tail": list(step.log_tail)}


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
            record.options = dict(event.options)
            for name in event.hosts:
                record.host(name).groups = list(event.groups.get(name, []))
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
            host.facts = dict(event.facts)
        elif isinstance(event, RunFinished):
            record.finished = event

    def close(self) -> None:
        """Nothing to release."""
