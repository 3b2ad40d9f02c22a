"""`package`: an installer run once, until the product (or a file it creates) is present."""

from __future__ import annotations

from typing import Any

from pushinstall.argspec import Arg
from pushinstall.model import Decision
from pushinstall.resources.base import Applied, ApplyContext, Plan, Probe
from pushinstall.resources.common import (
    PACKAGE_RETURN_CODES,
    diff,
    probe_failure,
    run_program,
    version_key,
)
from pushinstall.resources.programs import MESSAGES_ARG, MESSAGES_RULE, RUN_ARGS, return_codes_arg
from pushinstall.resources.schema import at_least_one_of

GUID = r"\{[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\}"

ARGS = (
    *RUN_ARGS,
    Arg("product_id", pattern=GUID, pattern_doc="a product code like {XXXXXXXX-XXXX-...}",
        doc="Product code in the Uninstall keys."),
    Arg("name", doc="Exact DisplayName in the Uninstall keys."),
    Arg("version", doc="Version that must be installed, compared numerically part by part "
        "(9.62.7172.1: the MSI's build, not the bundle's 9.62.0.0); a different one is a "
        "change."),
    Arg("state", default="present", choices=("present", "absent"),
        doc="absent: the program is the uninstaller, run while the product is installed."),
    Arg("min_version", doc="Version that must be installed at least (an older one is a "
        "change, a newer one is ok): the pin for upgrades."),
    return_codes_arg(PACKAGE_RETURN_CODES),
    MESSAGES_ARG,
)
RULES = (at_least_one_of("product_id", "name", "creates"), MESSAGES_RULE)


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
    """`ok` when every given check holds: the product installed (at `version`, or at least
    `min_version`, compared as numbers), the `creates` path present; with `state: absent`,
    the product not installed."""
    label = args.get("name") or args.get("product_id") or args.get("creates")
    subject = f"package '{label}'"
    failed = probe_failure(found, subject)
    if failed:
        return failed
    lines = []
    product = found.get("product")
    if args.get("state") == "absent":
        if product is not None and product.get("installed"):
            return Plan(Decision.CHANGE,
                        diff=diff(subject, f"installed {product.get('version')}", "absent"))
        return Plan(Decision.OK)
    wanted = str(args["version"]) if args.get("version") else None
    least = str(args["min_version"]) if args.get("min_version") else None
    want = f" {wanted}" if wanted else (f" {least} or later" if least else "")
    if product is not None:
        have = str(product.get("version") or "")
        if not product.get("installed"):
            lines.append(diff(subject, "absent", f"installed{want}"))
        elif wanted and version_key(have) != version_key(wanted):
            lines.append(diff(subject, f"version {have}", f"version {wanted}"))
        elif least and version_key(have) < version_key(least):
            lines.append(diff(subject, f"version {have}", f"version {least} or later"))
    creates = found.get("creates")
    if creates is not None and not creates.get("exists"):
        lines.append(diff(f"{subject} creates '{args['creates']}'", "absent", "present"))
    return Plan(Decision.CHANGE, diff="\n".join(lines)) if lines else Plan(Decision.OK)


def apply(args: dict[str, Any], ctx: ApplyContext) -> Applied:
    """Run the installer (with its `secret_file`, removed after whatever happens) and map
    its exit code: `return_codes` (default 0 ok; 3010, 1641, and UnifiedAgent's 98 and 97
    restart needed), a failed code's message from `messages`. A restart code while the
    product is still absent is a failure, not a restart."""
    applied = run_program(ctx, args, PACKAGE_RETURN_CODES)
    if not applied.reboot or args.get("state") == "absent" or not probes(args):
        return applied
    # UnifiedAgent's 97 is FailedWithErrors: a driver's mandatory restart after the product
    # went in, but also a failed MSI. A restart code with the product absent is a failure,
    # and restarting a server for it would only delay saying so.
    found = ctx.facts([{"id": probe.id, **(probe.query or {})} for probe in probes(args)])
    product = found.get("product")
    if isinstance(product, dict) and product.get("installed") is False:
        return Applied(failed=True, details=applied.details,
                       message=f"{applied.message}; but the product is not installed: failed")
    return applied
