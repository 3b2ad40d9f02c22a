"""`service`: a Windows service in a state and start mode."""

from __future__ import annotations

from pushinstall.resources.schema import Arg

ARGS = (
    Arg("name", required=True, doc="Service name or display name."),
    Arg("state", default="running", choices=("running", "stopped")),
    Arg("start_mode", choices=("auto", "delayed", "manual", "disabled")),
    Arg("ensure", default="present", choices=("present", "absent-ok"),
        doc="absent-ok: a missing service is fine (nothing to do)."),
)
