"""`reboot`: restart the host and wait for it to come back."""

from __future__ import annotations

from typing import Any

from pushinstall.argspec import INTEGER, Arg, Rule
from pushinstall.model import Decision
from pushinstall.resources.base import Applied, ApplyContext, Plan, Probe
from pushinstall.resources.common import diff

ARGS = (
    Arg("reason", default="pushinstall", doc="Shown in the event log."),
    Arg("timeout", INTEGER, minimum=1,
        doc="Seconds to wait for the host (default: the playbook's)."),
)
RULES: tuple[Rule, ...] = ()


# ---------------------------------------------------------------- runtime (base.py)


def probes(args: dict[str, Any]) -> list[Probe]:
    """Nothing: an explicit reboot is always wanted (guard it with `when`)."""
    return []


def plan(args: dict[str, Any], found: dict[str, Any]) -> Plan:
    """Always a change; not verifiable (a restart leaves nothing to compare)."""
    reason = str(args.get("reason") or "explicit reboot step")
    return Plan(Decision.CHANGE, diff=diff("host", "running", "restarted"), reason=reason,
                verifiable=False)


def apply(args: dict[str, Any], ctx: ApplyContext) -> Applied:
    """Ask the engine for the restart: it sends `reboot` with `reason` and waits up to
    `timeout` for a new boot time (the reboot policy applies)."""
    return Applied(changed=True, reboot=True, message=str(args.get("reason") or ""))
