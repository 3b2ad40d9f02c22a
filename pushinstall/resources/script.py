"""`script`: user PowerShell with a `test` and a `set` block, the escape hatch."""

from __future__ import annotations

from typing import Any

from pushinstall.argspec import OBJECT, Arg, Rule
from pushinstall.model import Decision
from pushinstall.remote.ops import request
from pushinstall.resources.base import Applied, ApplyContext, Plan, Probe
from pushinstall.resources.common import diff, reveal

ARGS = (
    Arg("test", doc="PowerShell that outputs $true when the host is compliant."),
    Arg("set", required=True, doc="PowerShell that makes it compliant."),
    Arg("parameters", OBJECT, default={}, doc="Data passed as the hashtable $Parameters."),
)
RULES: tuple[Rule, ...] = ()


# ---------------------------------------------------------------- runtime (base.py)


def _parameters(args: dict[str, Any]) -> dict[str, Any]:
    return dict(reveal(args.get("parameters") or {}))


def probes(args: dict[str, Any]) -> list[Probe]:
    """The `test` block run as a `script` request in the gather batch (it must not change
    the host); nothing without a `test`."""
    if not args.get("test"):
        return []
    return [Probe("test", request=request("script", source=str(args["test"]),
                                          parameters=_parameters(args)))]


def _errors(result: dict[str, Any]) -> str:
    return "; ".join(str(e).strip() for e in result.get("errors") or []) or "no detail"


def plan(args: dict[str, Any], found: dict[str, Any]) -> Plan:
    """`ok` when `test` output ends with `True`; a test that errors is `fail`. Without a
    `test` the `set` block runs every time (not verifiable)."""
    if not args.get("test"):
        return Plan(Decision.CHANGE, diff=diff("script", "no test", "set run"), verifiable=False)
    result = found.get("test")
    if not isinstance(result, dict) or "error" in result:
        error = (result or {}).get("error") or {}
        return Plan(Decision.FAIL,
                    reason=f"script test could not run: {error.get('message', 'no answer')}")
    if not result.get("success"):
        return Plan(Decision.FAIL, reason=f"script test failed: {_errors(result)}")
    output = [str(line).strip() for line in result.get("output") or [] if str(line).strip()]
    if output and output[-1].lower() == "true":
        return Plan(Decision.OK)
    return Plan(Decision.CHANGE, diff=diff("script test", output[-1] if output else "(no output)",
                                  "True"))


def apply(args: dict[str, Any], ctx: ApplyContext) -> Applied:
    """Run the `set` block with `$Parameters`; any error record fails the step."""
    result = ctx.call("script", source=str(args["set"]), parameters=_parameters(args))
    if not result.get("success"):
        return Applied(changed=True, failed=True, message=f"script set failed: {_errors(result)}")
    output = [str(line) for line in result.get("output") or []]
    return Applied(changed=True, message="\n".join(output[-5:]))
