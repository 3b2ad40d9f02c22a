"""`package`: an installer run once, until the product (or a file it creates) is present."""

from __future__ import annotations

from pushinstall.resources.programs import RUN_ARGS, return_codes_arg
from pushinstall.resources.schema import ANY, Arg, at_least_one_of

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
RULES = (at_least_one_of("product_id", "name", "creates"),)
