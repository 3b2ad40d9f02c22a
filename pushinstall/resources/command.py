"""`command`: a program run guarded by `creates`, `unless` (a fact condition) or `when`."""

from __future__ import annotations

from typing import Any

from pushinstall.argspec import ANY, OBJECT, PATH, Arg
from pushinstall.model import Decision
from pushinstall.resources.base import Applied, ApplyContext, Plan, Probe
from pushinstall.resources.common import (
    COMMAND_RETURN_CODES,
    command_line,
    condition_holds,
    condition_query,
    describe_condition,
    diff,
    probe_failure,
    run_program,
)
from pushinstall.resources.programs import MESSAGES_ARG, MESSAGES_RULE, RUN_ARGS, return_codes_arg
from pushinstall.resources.schema import exactly_one_of

CONDITION = (
    Arg("registry", OBJECT, fields=(
        Arg("key", required=True), Arg("name", required=True),
        Arg("view", default="64", choices=("64", "32")),
    )),
    Arg("equals", ANY, doc="With registry: the value it must equal."),
    Arg("file", PATH, doc="A path that must exist."),
    Arg("service", doc="A service that must exist (with status: that status)."),
    Arg("status", doc="With service: Running, Stopped, ..."),
    Arg("product", OBJECT, fields=(Arg("product_id"), Arg("name"))),
    Arg("ini", OBJECT, fields=(
        Arg("path", PATH, required=True), Arg("section", required=True),
        Arg("key", required=True),
    ), doc="With equals: a value in an INI file, e.g. the CS in the agent's drscout.conf."),
)

ARGS = (
    *RUN_ARGS,
    Arg("unless", OBJECT, fields=CONDITION,
        rules=(exactly_one_of("registry", "file", "service", "product", "ini"),),
        doc="Skip the run while this fact condition holds."),
    return_codes_arg(COMMAND_RETURN_CODES),
    MESSAGES_ARG,
)
RULES = (MESSAGES_RULE,)


# ---------------------------------------------------------------- runtime (base.py)


def probes(args: dict[str, Any]) -> list[Probe]:
    """The `creates` file and the `unless` condition's fact."""
    found: list[Probe] = []
    if args.get("creates"):
        found.append(Probe("creates", {"kind": "file", "path": str(args["creates"]),
                                       "hash": False}))
    if args.get("unless"):
        found.append(Probe("unless", condition_query(args["unless"])))
    return found


def plan(args: dict[str, Any], found: dict[str, Any]) -> Plan:
    """`ok` when `creates` exists or `unless` holds; else a change. Without a guard it runs
    every time and verify cannot prove anything (it trusts the exit code)."""
    subject = f"command {command_line(args)}"
    failed = probe_failure(found, subject)
    if failed:
        return failed
    creates = found.get("creates")
    if creates is not None and creates.get("exists"):
        return Plan(Decision.OK, reason=f"'{args['creates']}' exists")
    unless = found.get("unless")
    if unless is not None and condition_holds(args["unless"], unless):
        return Plan(Decision.OK, reason=f"unless: {describe_condition(args['unless'])}")
    guarded = creates is not None or unless is not None
    return Plan(Decision.CHANGE, diff=diff(subject, "not run", "run"), verifiable=guarded)


def apply(args: dict[str, Any], ctx: ApplyContext) -> Applied:
    """`run_process` (with its `secret_file`); exit codes through `return_codes` (default
    0 ok, 3010 restart needed)."""
    return run_program(ctx, args, COMMAND_RETURN_CODES)
