"""`command`: a program run guarded by `creates`, `unless` (a fact condition) or `when`."""

from __future__ import annotations

from pushinstall.resources.programs import RUN_ARGS, return_codes_arg
from pushinstall.resources.schema import ANY, MAP, Arg, exactly_one_of

CONDITION = (
    Arg("registry", MAP, fields=(
        Arg("key", required=True), Arg("name", required=True),
        Arg("view", default="64", choices=("64", "32")),
    )),
    Arg("equals", ANY, doc="With registry: the value it must equal."),
    Arg("file", doc="A path that must exist."),
    Arg("service", doc="A service that must exist (with status: that status)."),
    Arg("status", doc="With service: Running, Stopped, ..."),
    Arg("product", MAP, fields=(Arg("product_id"), Arg("name"))),
)

ARGS = (
    *RUN_ARGS,
    Arg("unless", MAP, fields=CONDITION,
        rules=(exactly_one_of("registry", "file", "service", "product"),),
        doc="Skip the run while this fact condition holds."),
    return_codes_arg({0: "ok"}),
)
