"""The plain data every layer shares: hosts and how to reach them, playbooks and their steps.

Loaders (`inventory/`, `playbook/`) build these; the engine, transports and reports read them.
Nothing here does I/O or imports anything above the ground floor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from pushinstall.errors import Location
from pushinstall.secret import Secret


class Status(str, Enum):
    """A host's or a step's outcome, spelled the same in events, reports and the history.

    `str`-valued: a status is its own JSON, SQLite and log text."""

    OK = "ok"                          # in the desired state
    CHANGED = "changed"                # brought there by this run
    FAILED = "failed"
    UNREACHABLE = "unreachable"
    SKIPPED = "skipped"                # `when` false, or never started
    COMPLIANT = "compliant"            # check mode: nothing to change
    DRIFTED = "drifted"                # check mode: a change is due
    REBOOT_PENDING = "reboot_pending"  # a step: done, but a restart it needs is still due
    INTERRUPTED = "interrupted"        # Ctrl-C or SIGTERM stopped the host before it was done

    def __str__(self) -> str:
        return self.value


# A host that failed its run: counts toward max_fail_percentage and the exit code.
FAILED_STATUSES = frozenset({Status.FAILED, Status.UNREACHABLE})
# A step that is not in its desired state: a failure in a report (JUnit, HTML, drift).
UNMET_STATUSES = frozenset({Status.FAILED, Status.DRIFTED})
# What a report puts first and counts as a failure: failed hosts and drifted ones.
ATTENTION_STATUSES = FAILED_STATUSES | {Status.DRIFTED, Status.INTERRUPTED}


class Decision(str, Enum):
    """What planning decided for one step (a resource's `plan`)."""

    OK = "ok"            # in the desired state
    CHANGE = "change"    # apply would change it
    FAIL = "fail"        # cannot be brought to the desired state by apply (a registry assert)

    def __str__(self) -> str:
        return self.value


TRANSPORTS = ("psrp", "winrm", "ssh", "lab")
AUTH_METHODS = ("negotiate", "ntlm", "kerberos", "credssp", "basic", "certificate")


@dataclass
class Connection:
    """How to reach one host. Defaults are safe: HTTPS with certificate validation."""

    transport: str = "psrp"
    address: str = ""                 # DNS name or IP; the host's name when not set
    port: int | None = None           # None: the transport's default (5986 HTTPS, 5985 HTTP, 22)
    auth: str = "negotiate"
    tls: bool = True                  # HTTPS; False means HTTP with message encryption
    cert_validation: bool | str = True  # True, False, or a CA bundle path
    allow_unencrypted: bool = False   # Basic over plain HTTP only when this is True
    username: str | None = None
    password: Secret | None = None
    certificate_pem: str | None = None      # auth: certificate
    certificate_key_pem: str | None = None
    known_hosts: str | None = None    # ssh: path; None means the user's default
    host_key_checking: bool = True    # ssh
    connect_timeout: float = 30.0
    read_timeout: float = 60.0
    operation_timeout: float = 20.0


@dataclass
class Host:
    """One target machine: its name, groups (nearest first), merged vars and connection."""

    name: str
    groups: list[str] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)
    connection: Connection = field(default_factory=Connection)
    location: Location | None = None


@dataclass
class Group:
    """A group of hosts: its own vars, direct hosts and child groups."""

    name: str
    vars: dict[str, Any] = field(default_factory=dict)
    hosts: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    location: Location | None = None


@dataclass
class Inventory:
    """All hosts (by name, in file order) and groups of one or more inventory files."""

    hosts: dict[str, Host] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def group_members(self) -> dict[str, list[str]]:
        """Each group's hosts, its descendants' included, in inventory order."""
        members: dict[str, set[str]] = {name: set() for name in self.groups}
        for host in self.hosts.values():
            for group in [*host.groups, "all"]:
                members.setdefault(group, set()).add(host.name)
        order = list(self.hosts)
        return {g: [h for h in order if h in names] for g, names in members.items()}



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
    when_location: Location | None = None
    # `render_step`'s memo: the variables the args use, and the args rendered per their values
    uses: frozenset[str] | None = field(default=None, repr=False, compare=False)
    rendered: dict[Any, dict[str, Any]] = field(default_factory=dict, repr=False,
                                                compare=False)


@dataclass
class Playbook:
    """A loaded and validated playbook."""

    name: str
    hosts: str
    vars: dict[str, Any] = field(default_factory=dict)
    settings: Settings = field(default_factory=Settings)
    steps: list[Step] = field(default_factory=list)
    path: str = ""
    hosts_location: Location | None = None
