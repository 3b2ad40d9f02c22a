"""Resource types: one module per type, each with `ARGS` (validation) and the runtime
functions `probes`, `plan`, `apply` (see `base.py`). `RESOURCE_TYPES` maps a step's type key
to its module."""

from __future__ import annotations

from types import ModuleType

from pushinstall.resources import (
    archive,
    command,
    directory,
    file,
    package,
    pending_reboot,
    preflight,
    reboot,
    registry,
    script,
    service,
)

RESOURCE_TYPES: dict[str, ModuleType] = {
    "pending_reboot": pending_reboot,
    "preflight": preflight,
    "directory": directory,
    "file": file,
    "archive": archive,
    "package": package,
    "service": service,
    "registry": registry,
    "command": command,
    "script": script,
    "reboot": reboot,
}
