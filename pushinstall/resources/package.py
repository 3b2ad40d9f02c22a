"""`package`: an installer run once, until the product (or a file it creates) is present."""

from __future__ import annotations

from typing import Any

from pushinstall.model import Decision
from pushinstall.resources.base import Applied, ApplyContext, Plan, Probe
from pushinstall.resources.common import (
    PACKAGE_RETURN_CODES,
    diff,
    probe_failure,
    run_program,
)
from pushinstall.resources.exit_codes import TABLES
from pushinstall.resources.programs import RUN_ARGS, return_codes_arg
from pushinstall.resources.schema import ANY, Arg, at_least_one_of, known_table_or_mapping

GUID = r"\{[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\}"

ARGS = (
    *RUN_ARGS,
    Arg("product_id", pattern=GUID, pattern_doc="a product code like {XXXXXXXX-XXXX-...}",
        doc="Product code in the Uninstall keys."),
    Arg("name", doc="Exact DisplayName in the Uninstall keys."),
    Arg("version", doc="Version that must be installed (a different one is a change)."),
    return_codes_arg({0: "ok", 3010: "reboot", 1641: "reboot"}),
    Arg("messages", ANY, default="",
        doc="Exit-code messages: 'asr_unified_agent', 'msiexec', or a mapping code -> text."),
)
RULES = (at_least_one_of("product_id", "name", "creates"),
         known_table_or_mapping("messages", TABLES))


# ---------------------------------------------------------------- runtime (base.py)


def probes(args: dict[str, Any]) -> list[Probe]:
    """The `product` fact (by product_id and/or name) and the `creates` file."""
    found: list[Probe] = []
    product = {k: str(args[k]) for k in ("product_id", "name") if args.get(k)}
    if product:
        found.append(Probe("product", {"kind": "product", **product}))
    if args.get("creates"):
        found.append(Probe("creates", {"kind": "file", "path": str(args["creates"]),
                                       "hash": False}))
    return found


def plan(args: dict[str, Any], found: dict[str, Any]) -> Plan:
    """`ok` when every given check holds: the product installed (at `version` when given),
    the `creates` path present."""
    label = args.get("name") or args.get("product_id") or args.get("creates")
    subject = f"package '{label}'"
    failed = probe_failure(found, subject)
    if failed:
        return failed
    lines = []
    product = found.get("product")
    wanted = str(args["version"]) if args.get("version") else None
    if product is not None:
        if not product.get("installed"):
            lines.append(diff(subject, "absent", f"installed{f' {wanted}' if wanted else ''}"))
        elif wanted and str(product.get("version")) != wanted:
            lines.append(diff(subject, f"version {product.get('version')}", f"version {wanted}"))
    creates = found.get("creates")
    if creates is not None and not creates.get("exists"):
        lines.append(diff(f"{subject} creates '{args['creates']}'", "absent", "present"))
    return Plan(Decision.CHANGE, diff="\n".join(lines)) if lines else Plan(Decision.OK)


def apply(args: dict[str, Any], ctx: ApplyContext) -> Applied:
    """Run the installer (with its `secret_file`, removed after whatever happens) and map
    its exit code: `return_codes` (default 0 ok, 3010 and 1641 reboot), a failed code's
    message from `messages`."""
    return run_program(ctx, args, PACKAGE_RETURN_CODES)
