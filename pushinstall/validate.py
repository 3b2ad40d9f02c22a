"""`pushinstall validate`: everything a run would check before touching a host, and nothing
that needs a host or a secret.

Inventory, extra vars and playbook are loaded, the hosts selected, and every step rendered for
every selected host, so an undefined variable or a value that only goes wrong for one host is
caught here. Secrets (`{env: ...}`, `{file: ...}`, `{prompt: true}`) are never read: rendering
keeps them as unrevealed `Secret`s.
"""

from __future__ import annotations

from typing import Any

from pushinstall.errors import InputError
from pushinstall.playbook import (
    Playbook,
    host_variables,
    load_playbook,
    parse_extra_vars,
    render_step,
)
from pushinstall.templating import check_expression

# Names a `when` may use besides the host's variables (conditions.py adds them).
WHEN_NAMES = frozenset({"facts"})


def _check_when(playbook: Playbook, variables: dict[str, Any]) -> None:
    for step in playbook.steps:
        if not step.when:
            continue
        names = check_expression(step.when, step.when_location)
        missing = sorted(names - variables.keys() - WHEN_NAMES)
        if missing:
            raise InputError(
                f"undefined variable '{missing[0]}' in 'when' of step '{step.name}' "
                f"for host '{variables.get('inventory_hostname')}'",
                step.when_location, "a variable from the inventory, the playbook's vars, -e, "
                "or facts",
            )


def check_hosts(hosts: list[Any], playbook: Playbook, extra: dict[str, Any]) -> None:
    """Render every step (and check every `when`) for every host; `InputError` at the first
    problem. `run` and `check` call this too, so a bad template stops them before any host is
    touched."""
    for host in hosts:
        variables = host_variables(host, playbook, extra)
        for step in playbook.steps:
            render_step(step, variables)
        _check_when(playbook, variables)


def validate_run(inventory_paths: list[str], playbook_path: str, limit: str | None,
                 extra_vars: list[str]) -> str:
    """Validate a run without contacting any host; return a one-line summary.

    Raises `InputError` (exit 5) at the first problem.
    """
    from pushinstall.inventory import load_inventory, select_hosts

    extra = parse_extra_vars(list(extra_vars))
    inventory = load_inventory(list(inventory_paths))
    playbook = load_playbook(playbook_path, extra)
    hosts = select_hosts(inventory, playbook.hosts, limit,
                         pattern_location=playbook.hosts_location)
    check_hosts(hosts, playbook, extra)
    steps = len(playbook.steps)
    return (f"playbook OK: {steps} step{'s' if steps != 1 else ''}, "
            f"{len(hosts)} host{'s' if len(hosts) != 1 else ''}")
