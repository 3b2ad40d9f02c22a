"""`pending_reboot`: a gate on Windows' pending-restart signals (DSC's PendingReboot)."""

from __future__ import annotations

from typing import Any

from pushinstall.argspec import BOOLEAN, STRING_LIST, Arg, Rule
from pushinstall.model import Decision
from pushinstall.remote.ops import PENDING_SIGNALS
from pushinstall.resources.base import Applied, ApplyContext, Plan, Probe
from pushinstall.resources.common import diff, probe_failure

SIGNALS = (*PENDING_SIGNALS, "sccm_client")

ARGS = (
    Arg("on_pending", default="fail", choices=("fail", "warn", "reboot"),
        doc="What a pending restart does: fail the host, warn and go on, or restart first."),
    Arg("in_check", default="warn", choices=("warn", "drift"),
        doc="What `check` makes of a pending restart: a warning (a nightly check should not "
            "page anyone for Windows Update), or drift."),
    Arg("ignore", STRING_LIST, default=[], choices=SIGNALS,
        doc="Signals not to count: " + ", ".join(SIGNALS) + "."),
    Arg("sccm", BOOLEAN, default=False,
        doc="Also ask the SCCM client (signal sccm_client; needs its WMI classes)."),
)
RULES: tuple[Rule, ...] = ()


# ---------------------------------------------------------------- runtime (base.py)


def probes(args: dict[str, Any]) -> list[Probe]:
    """The `pending_reboot` fact."""
    query: dict[str, Any] = {"kind": "pending_reboot"}
    if args.get("sccm"):
        query["sccm"] = True
    return [Probe("pending", query)]


def plan(args: dict[str, Any], found: dict[str, Any]) -> Plan:
    """`ok` with no signal left after `ignore`; else per `on_pending`: `fail` fails, `warn` is
    ok with a reason, `reboot` is a change that apply turns into a restart."""
    failed = probe_failure(found, "pending reboot")
    if failed:
        return failed
    ignored = set(args.get("ignore") or [])
    signals = found["pending"].get("signals") or {}
    pending = sorted(name for name, on in signals.items() if on and name not in ignored)
    if not pending:
        return Plan(Decision.OK)
    named = ", ".join(pending)
    change = diff("pending reboot", f"yes ({named})", "no")
    policy = args.get("on_pending") or "fail"
    drift = args.get("in_check") == "drift"
    if policy == "warn":
        return Plan(Decision.OK, reason=f"a reboot is pending ({named}); on_pending: warn")
    if policy == "reboot":
        return Plan(Decision.CHANGE, diff=change, drift_in_check=drift,
                    reason=f"a reboot is pending ({named}); on_pending: reboot")
    return Plan(Decision.FAIL, diff=change, drift_in_check=drift,
                reason=f"a reboot is pending ({named}); restart the server during a "
                       "maintenance window, or set on_pending: reboot")


def apply(args: dict[str, Any], ctx: ApplyContext) -> Applied:
    """Ask the engine for a restart (it sends `reboot` and waits, per the reboot policy)."""
    return Applied(changed=True, reboot=True, message="restart to clear the pending reboot")
