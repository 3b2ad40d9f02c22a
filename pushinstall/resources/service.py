"""`service`: a Windows service in a state and start mode."""

from __future__ import annotations

from typing import Any

from pushinstall.argspec import Arg, Rule
from pushinstall.model import Decision
from pushinstall.resources.base import Applied, ApplyContext, Plan, Probe
from pushinstall.resources.common import diff, probe_failure

ARGS = (
    Arg("name", required=True, doc="Service name or display name."),
    Arg("state", default="running", choices=("running", "stopped")),
    Arg("start_mode", choices=("auto", "delayed", "manual", "disabled")),
    Arg("ensure", default="present", choices=("present", "absent-ok"),
        doc="absent-ok: a missing service is fine (nothing to do)."),
)
RULES: tuple[Rule, ...] = ()


# ---------------------------------------------------------------- runtime (base.py)


START_MODES = {"auto": "Automatic", "delayed": "AutomaticDelayed", "manual": "Manual",
               "disabled": "Disabled"}
STATES = {"running": "Running", "stopped": "Stopped"}


def probes(args: dict[str, Any]) -> list[Probe]:
    """The `service` fact."""
    return [Probe("service", {"kind": "service", "name": str(args["name"])})]


def _wanted(args: dict[str, Any]) -> tuple[str, str | None]:
    state = STATES[str(args.get("state") or "running")]
    mode = args.get("start_mode")
    return state, START_MODES[str(mode)] if mode else None


def plan(args: dict[str, Any], found: dict[str, Any]) -> Plan:
    """Compare status and start mode. A missing service is `ok` with `ensure: absent-ok`,
    else `fail` (apply cannot create one; an earlier step that installs it makes the engine
    probe again before this step)."""
    subject = f"service '{args['name']}'"
    failed = probe_failure(found, subject)
    if failed:
        return failed
    fact = found["service"]
    state, mode = _wanted(args)
    if not fact.get("exists"):
        if args.get("ensure") == "absent-ok":
            return Plan(Decision.OK, reason=f"{subject} is not installed (ensure: absent-ok)")
        return Plan(Decision.FAIL, diff=diff(subject, "absent", state),
                    reason=f"{subject} is not installed")
    lines = []
    if fact.get("status") != state:
        lines.append(diff(subject, fact.get("status"), state))
    if mode and fact.get("start_mode") != mode:
        lines.append(diff(f"{subject} start mode", fact.get("start_mode"), mode))
    return Plan(Decision.CHANGE, diff="\n".join(lines)) if lines else Plan(Decision.OK)


def apply(args: dict[str, Any], ctx: ApplyContext) -> Applied:
    """`set_service`: start mode first, then the state."""
    state, mode = _wanted(args)
    request: dict[str, Any] = {"name": str(args["name"]), "state": state.lower()}
    if mode:
        request["start_mode"] = mode
    result = ctx.call("set_service", **request)
    return Applied(changed=bool(result.get("changed")),
                   message=f"{result.get('status')}, {result.get('start_mode')}")
