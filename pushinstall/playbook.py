"""Playbook: YAML -> `Playbook(settings, steps)`.

(Data model first; the loader and templating are built in issue 2.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pushinstall.errors import Location


@dataclass
class RebootPolicy:
    """What to do when a step needs a restart (DSC: RebootNodeIfNeeded, ContinueConfiguration)."""

    mode: str = "if_needed"          # never | if_needed
    after_reboot: str = "continue"   # continue | stop
    timeout: float = 1800.0          # seconds to wait for the host to come back


@dataclass
class Settings:
    """Run settings of a playbook."""

    forks: int = 50
    serial: list[int | str] = field(default_factory=list)   # [] = all at once; ints or "25%"
    max_fail_percentage: float | None = None
    any_errors_fatal: bool = False
    step_timeout: float = 3600.0
    host_timeout: float = 7200.0
    connect_timeout: float = 30.0
    retries: int = 3
    reboot: RebootPolicy = field(default_factory=RebootPolicy)


@dataclass
class Step:
    """One step: a resource type with its (validated, not yet templated) arguments."""

    name: str
    type: str
    args: dict[str, Any]
    when: str | None = None
    timeout: float | None = None
    retries: int | None = None
    no_log: bool = False
    location: Location | None = None


@dataclass
class Playbook:
    """A loaded and validated playbook."""

    name: str
    hosts: str
    vars: dict[str, Any] = field(default_factory=dict)
    settings: Settings = field(default_factory=Settings)
    steps: list[Step] = field(default_factory=list)
    path: str = ""
