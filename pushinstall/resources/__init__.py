"""Resource types: one module per type, each a `base.Resource` — `ARGS` and `RULES`
(validation, `schema.py`) and the runtime functions `probes`, `plan`, `apply`.
`RESOURCE_TYPES` maps a step's type key to its module."""

from __future__ import annotations

from typing import Any

from pushinstall.errors import Location
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
from pushinstall.resources.base import Resource
from pushinstall.resources.schema import check_args, markdown_table

RESOURCE_TYPES: dict[str, Resource] = {
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


def validate_args(type_name: str, args: Any, location: Location | None = None) -> None:
    """Validate a step's arguments against resource type `type_name`'s `ARGS` and `RULES`.

    Raises `InputError` at the key or value at fault (`args` should be a `LocatedDict`).
    """
    module = RESOURCE_TYPES[type_name]
    check_args(module.ARGS, args, f"'{type_name}'", location, module.RULES)


def resource_reference() -> str:
    """Every resource type's arguments in Markdown, as docs/playbook.md carries them."""
    parts = []
    for name, module in RESOURCE_TYPES.items():
        summary = (module.__doc__ or "").strip().splitlines()[0]
        parts += [f"### `{name}`", "", summary, "", markdown_table(module.ARGS), ""]
        notes = [rule.__doc__ for rule in module.RULES if rule.__doc__]
        notes += [f"`{arg.name}`: {rule.__doc__}" for arg in module.ARGS
                  for rule in arg.rules if rule.__doc__]
        parts += [*(f"- {note}" for note in notes), *([""] if notes else [])]
    return "\n".join(parts).rstrip() + "\n"
