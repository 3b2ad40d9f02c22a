"""`registry`: a registry value equals something (set it, or only assert it)."""

from __future__ import annotations

from typing import Any

from pushinstall.argspec import ANY, Arg, Rule
from pushinstall.model import Decision
from pushinstall.resources.base import Applied, ApplyContext, Plan, Probe
from pushinstall.resources.common import (
    diff,
    probe_failure,
    registry_value,
    reveal,
    same_value,
    shown,
)

HIVE_KEY = (
    r"(?i)(HKLM|HKCU|HKU|HKCR|HKEY_LOCAL_MACHINE|HKEY_CURRENT_USER|HKEY_USERS|HKEY_CLASSES_ROOT)"
    r":?\\.+"
)

ARGS = (
    Arg("key", required=True, pattern=HIVE_KEY, pattern_doc="a key like HKLM:\\SOFTWARE\\Vendor",
        doc="Registry key."),
    Arg("name", required=True, doc="Value name ('' for the default value)."),
    Arg("value", ANY, required=True, doc="Desired data."),
    Arg("type", default="String",
        choices=("String", "ExpandString", "DWord", "QWord", "MultiString")),
    Arg("view", default="64", choices=("64", "32"), doc="Registry view."),
    Arg("mode", default="set", choices=("set", "assert"),
        doc="assert: a difference fails the step and nothing is written."),
)
RULES: tuple[Rule, ...] = ()


# ---------------------------------------------------------------- runtime (base.py)


def _view(args: dict[str, Any]) -> str:
    return str(args.get("view") or "64")


def _type(args: dict[str, Any]) -> str:
    return str(args.get("type") or "String")


def probes(args: dict[str, Any]) -> list[Probe]:
    """The `registry` fact of the value."""
    return [Probe("value", {"kind": "registry", "key": str(args["key"]),
                            "name": str(args["name"]), "view": _view(args)})]


def plan(args: dict[str, Any], found: dict[str, Any]) -> Plan:
    """Compare value and type. `mode: assert` makes a difference `fail` with both values
    (how "registered with the CS" is verified); `set` makes it a change."""
    subject = f"registry {args['key']}\\{args['name']}"
    if _view(args) == "32":
        subject += " (32-bit view)"
    failed = probe_failure(found, subject)
    if failed:
        return failed
    fact = found["value"]
    value_type = _type(args)
    try:
        wanted = registry_value(args["value"], value_type)
    except (TypeError, ValueError) as error:
        return Plan(Decision.FAIL, reason=f"{subject}: {error}")
    present = bool(fact.get("exists"))
    if present and same_value(fact.get("value"), wanted) and (
            args.get("mode") == "assert" or fact.get("type") == value_type):
        return Plan(Decision.OK)
    before = shown(fact.get("value")) if present else "(absent)"
    if present and fact.get("type") != value_type and same_value(fact.get("value"), wanted):
        before, after = f"{before} ({fact.get('type')})", f"{shown(wanted)} ({value_type})"
    else:
        after = shown(wanted)
    change = diff(subject, before, after)
    if args.get("mode") == "assert":
        return Plan(Decision.FAIL,
                    diff=change, reason=f"{subject}: expected {after}, found {before}")
    return Plan(Decision.CHANGE, diff=change)


def apply(args: dict[str, Any], ctx: ApplyContext) -> Applied:
    """`set_registry` (creates the key). Never called for `mode: assert` (plan fails)."""
    value_type = _type(args)
    result = ctx.call("set_registry", key=str(args["key"]), name=str(args["name"]),
                      value=reveal(registry_value(args["value"], value_type)),
                      type=value_type, view=_view(args))
    return Applied(changed=bool(result.get("changed")))
