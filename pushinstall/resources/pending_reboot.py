"""`pending_reboot`: a gate on Windows' pending-restart signals (DSC's PendingReboot)."""

from __future__ import annotations

from pushinstall.resources.schema import LIST, Arg

SIGNALS = (
    "pending_file_rename", "pending_file_rename2", "component_based_servicing",
    "windows_update", "computer_rename",
)

ARGS = (
    Arg("on_pending", default="fail", choices=("fail", "warn", "reboot"),
        doc="What a pending restart does: fail the host, warn and go on, or restart first."),
    Arg("ignore", LIST, default=[],
        doc="Signals not to count: " + ", ".join(SIGNALS) + "."),
)
