"""`directory`: a directory exists on the target."""

from __future__ import annotations

from typing import Any

from pushinstall.argspec import PATH, Arg, Rule
from pushinstall.model import Decision
from pushinstall.resources.base import Applied, ApplyContext, Plan, Probe
from pushinstall.resources.common import diff, probe_failure

ARGS = (Arg("path", PATH, required=True, doc="Directory on the target, parents created."),)
RULES: tuple[Rule, ...] = ()


# ---------------------------------------------------------------- runtime (base.py)


def probes(args: dict[str, Any]) -> list[Probe]:
    """The `file` fact of the path (no hash)."""
    return [Probe("path", {"kind": "file", "path": str(args["path"]), "hash": False})]


def plan(args: dict[str, Any], found: dict[str, Any]) -> Plan:
    """`ok` when the directory exists; a file in its place cannot be fixed (`fail`)."""
    subject = f"directory '{args['path']}'"
    failed = probe_failure(found, subject)
    if failed:
        return failed
    fact = found["path"]
    if fact.get("exists") and fact.get("is_directory"):
        return Plan(Decision.OK)
    if fact.get("exists"):
        return Plan(Decision.FAIL, diff=diff(subject, "a file", "a directory"),
                    reason=f"a file is in the way of {subject}")
    return Plan(Decision.CHANGE, diff=diff(subject, "absent", "present"))


def apply(args: dict[str, Any], ctx: ApplyContext) -> Applied:
    """`ensure_directory` (parents too)."""
    result = ctx.call("ensure_directory", path=str(args["path"]))
    return Applied(changed=bool(result.get("changed")))
