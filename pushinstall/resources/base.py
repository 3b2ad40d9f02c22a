"""The runtime side of a resource type: what the engine calls.

A resource module (`pushinstall/resources/<type>.py`) is a `Resource`: it declares `ARGS` and
`RULES` (validation, `schema.py`) and these module-level functions:

    def probes(args: dict) -> list[Probe]
        What the step needs to know, gathered in the host's ONE gather batch (and again in
        the ONE verify batch). Usually fact queries; `script` adds a `script` request.
    def plan(args: dict, found: dict[str, Any]) -> Plan
        Pure: compare what was found (probe id -> fact/result, or {"error": {...}}) with the
        desired state. No I/O.
    def apply(args: dict, ctx: ApplyContext) -> Applied
        Make the change with op calls through ctx. Only called when plan said CHANGE.

`args` are the step's rendered arguments (templates already rendered for this host; secrets
are `pushinstall.secret.Secret` objects — call `.reveal()` only when building an op request).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pushinstall.argspec import Arg, Rule
from pushinstall.model import Decision


@dataclass(frozen=True)
class Probe:
    """One thing to learn in the gather batch.

    `query` is a `facts` query without its `id` (e.g. {"kind": "service", "name": "svagents"}),
    or `request` a whole op request for the batch (only `script` uses this; it must not change
    the host). `id` is local to the step; the engine namespaces it.
    """

    id: str
    query: dict[str, Any] | None = None
    request: dict[str, Any] | None = None


@dataclass
class Plan:
    """The decision for one step: status, a human diff (`before -> after`), a reason."""

    status: Decision
    diff: str = ""
    reason: str = ""
    verifiable: bool = True   # False when a re-plan after apply proves nothing (e.g. an
                              # unguarded `command`): verify then trusts apply's outcome
    drift_in_check: bool = True  # False: `check` reports this change or failure as a
                                 # warning, not drift (a pending restart, by default)


@dataclass
class Applied:
    """What apply did. `reboot` asks the engine for a restart per the reboot policy."""

    changed: bool = True
    reboot: bool = False
    failed: bool = False
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)


class ApplyContext(Protocol):
    """What a resource may do during apply: ops on its host, nothing else."""

    host_name: str

    def call(self, op: str, **args: Any) -> Any:
        """Send one op; return its result; an error answer raises RemoteOpFailed."""

    def put_file(self, local: Path, remote: str, sha256: str) -> dict[str, Any]:
        """Push a controller file to the target (sha256 checked)."""

    def facts(self, queries: list[dict[str, Any]]) -> dict[str, Any]:
        """A fresh `facts` call (queries with ids) -> {id: fact}."""

    def log(self, message: str) -> None:
        """A debug line for this host (secrets already masked by the engine)."""


class Resource(Protocol):
    """A resource type: what a module in `pushinstall/resources/` provides (see above)."""

    @property
    def ARGS(self) -> tuple[Arg, ...]:
        """The arguments a step of this type takes."""

    @property
    def RULES(self) -> tuple[Rule, ...]:
        """Checks across arguments (e.g. exactly one of two)."""

    def probes(self, args: dict[str, Any]) -> list[Probe]:
        """What the step needs to know, gathered in the host's one gather batch."""

    def plan(self, args: dict[str, Any], found: dict[str, Any]) -> Plan:
        """Pure: the decision from what the probes found."""

    def apply(self, args: dict[str, Any], ctx: ApplyContext) -> Applied:
        """Make the change through `ctx` (only called when plan said CHANGE)."""
