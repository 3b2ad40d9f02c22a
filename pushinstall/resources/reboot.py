"""`reboot`: restart the host and wait for it to come back."""

from __future__ import annotations

from pushinstall.resources.schema import INT, Arg

ARGS = (
    Arg("reason", default="pushinstall", doc="Shown in the event log."),
    Arg("timeout", INT, doc="Seconds to wait for the host (default: the playbook's)."),
)
