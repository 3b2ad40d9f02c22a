"""Inventory: an Ansible-compatible YAML inventory -> `Inventory(hosts, groups)`.

Structure: a mapping of groups (normally `all:`), each with `hosts:`, `children:` and `vars:`,
nested to any depth; host names may hold ranges (`web[01:50]`, `db[a:f]`, `[01:50:2]`).

Var precedence, lowest first: `all`, then groups by depth (a parent before its children;
groups at the same depth in name order, as Ansible does), then the host's own vars. Several
`-i` files merge. Connection settings come from the merged vars (connection.py);
secrets may be `{env: NAME}`, `{file: PATH}` or `{prompt: true}` (secrets.py).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from pushinstall.errors import InputError, Location
from pushinstall.model import Host, Inventory


def load_inventory(paths: list[str]) -> Inventory:
    """Load and merge inventory files; any problem is an `InputError` at its place."""
    from pushinstall.inventory.loader import InventoryLoader

    loader = InventoryLoader()
    for path in paths:
        loader.add_file(path)
    return loader.build()


def select_hosts(inventory: Inventory, pattern: str, limit: str | None = None, *,
                 pattern_location: Location | None = None) -> list[Host]:
    """Hosts matched by the playbook's `pattern` and by `--limit`, in inventory order.

    A pattern or limit that matches no host is an `InputError`.
    """
    from pushinstall.inventory.limit import COMMAND_LINE, select

    names, groups = list(inventory.hosts), inventory.group_members()
    chosen = select(pattern, names, groups, pattern_location or COMMAND_LINE)
    if not chosen:
        raise InputError(f"hosts pattern '{pattern}' matches no host", pattern_location,
                         "a host, group or glob of the inventory")
    if limit:
        limited = set(select(limit, names, groups, COMMAND_LINE))
        if not limited:
            raise InputError(f"--limit '{limit}' matches no host", COMMAND_LINE,
                             "a host, group or glob of the inventory")
        chosen = [name for name in chosen if name in limited]
        if not chosen:
            raise InputError(f"--limit '{limit}' leaves none of the hosts of '{pattern}'",
                             COMMAND_LINE, "a limit that overlaps the playbook's hosts")
    return [inventory.hosts[name] for name in chosen]


def _masked(value: Any) -> Any:
    from pushinstall.inventory.secrets import mask_secrets

    return mask_secrets(value)   # secret-named keys at every depth too


def describe_hosts(inventory: Inventory, limit: str | None = None) -> dict[str, Any]:
    """`{"hosts": {name: [groups]}}` for the hosts `limit` selects (all without one)."""
    hosts = select_hosts(inventory, "all", limit) if inventory.hosts else []
    return {"hosts": {h.name: list(h.groups) for h in hosts}}


def describe_host(inventory: Inventory, name: str) -> dict[str, Any]:
    """One host: groups, merged vars and resolved connection, secrets masked."""
    from pushinstall.inventory.limit import COMMAND_LINE
    from pushinstall.source import did_you_mean

    host = inventory.hosts.get(name)
    if host is None:
        raise InputError(f"--host '{name}' is not in the inventory"
                         f"{did_you_mean(name, inventory.hosts)}", COMMAND_LINE,
                         "a host name from 'pushinstall inventory'")
    connection = {f.name: getattr(host.connection, f.name) for f in fields(host.connection)
                  if getattr(host.connection, f.name) is not None}
    return {
        "name": host.name,
        "groups": list(host.groups),
        "connection": _masked(connection),
        "vars": _masked(dict(host.vars)),
    }
