"""Playbooks: YAML -> `model.Playbook` (loader, settings), extra vars, templating, `when`.

`load_playbook` reads and validates a file; `host_variables` and `render_step` prepare a step
for one host. docs/playbook.md is the reference.
"""

from pushinstall.playbook.extra_vars import parse_extra_vars
from pushinstall.playbook.loader import (
    STEP_KEYS,
    host_variables,
    load_playbook,
    referenced_names,
    render_step,
)

__all__ = [
    "STEP_KEYS", "host_variables", "load_playbook", "parse_extra_vars", "referenced_names",
    "render_step",
]
