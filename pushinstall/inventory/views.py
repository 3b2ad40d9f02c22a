"""The inventory as Ansible users look at it: `--graph` (a tree) and `--list` (the JSON shape
of `ansible-inventory --list`), secrets masked in both."""

from __future__ import annotations

from typing import Any

from pushinstall.inventory.secrets import mask_secrets
from pushinstall.model import Inventory


def _children(inventory: Inventory, name: str) -> list[str]:
    if name == "all":
        named = {c for g in inventory.groups.values() for c in g.children}
        top = [g for g in inventory.groups if g != "all" and g not in named]
        own = inventory.groups["all"].children if "all" in inventory.groups else []
        return list(dict.fromkeys([*own, *top]))
    group = inventory.groups.get(name)
    return list(group.children) if group else []


def _direct_hosts(inventory: Inventory, name: str) -> list[str]:
    if name == "all":
        return [h.name for h in inventory.hosts.values() if not h.groups]
    group = inventory.groups.get(name)
    return list(group.hosts) if group else []


def graph_lines(inventory: Inventory, name: str = "all") -> list[str]:
    """`@all:` / `  |--@site_ams:` / `  |  |--web01`, as `ansible-inventory --graph`."""
    lines: list[str] = []

    def walk(group: str, depth: int, trail: tuple[str, ...]) -> None:
        lines.append(("  |" * (depth - 1) + "  |--" if depth else "") + f"@{group}:")
        for child in _children(inventory, group):
            if child not in trail:   # the loader refuses cycles; this is belt and braces
                walk(child, depth + 1, (*trail, child))
        for host in _direct_hosts(inventory, group):
            lines.append("  |" * depth + f"  |--{host}")

    walk(name, 0, (name,))
    return lines


def ansible_list(inventory: Inventory) -> dict[str, Any]:
    """`{"_meta": {"hostvars": {...}}, "all": {"children": [...]}, GROUP: {"hosts": [...],
    "children": [...], "vars": {...}}}`; every host's vars merged, secrets masked."""
    out: dict[str, Any] = {"_meta": {"hostvars": {
        host.name: mask_secrets(dict(host.vars)) for host in inventory.hosts.values()}}}
    for name in ["all", *[g for g in inventory.groups if g != "all"]]:
        entry: dict[str, Any] = {}
        if _children(inventory, name):
            entry["children"] = _children(inventory, name)
        if _direct_hosts(inventory, name):
            entry["hosts"] = _direct_hosts(inventory, name)
        group = inventory.groups.get(name)
        if group is not None and group.vars:
            entry["vars"] = mask_secrets(dict(group.vars))
        out[name] = entry
    return out
