"""Inventory: an Ansible-compatible YAML inventory -> `Inventory(hosts, groups)`.

Structure: a mapping of groups (normally `all:`), each with `hosts:`, `children:` and `vars:`,
nested to any depth; host names may hold ranges (`web[01:50]`, `db[a:f]`, `[01:50:2]`).

Var precedence, lowest first: `all`, then groups by depth (a parent before its children;
groups at the same depth in name order, as Ansible does), then the host's own vars. Several
`-i` files merge. Connection settings come from the merged vars (inventory_connection.py);
secrets may be `{env: NAME}`, `{file: PATH}` or `{prompt: true}` (inventory_secrets.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from pushinstall.errors import InputError, Location
from pushinstall.secret import Secret

TRANSPORTS = ("psrp", "winrm", "ssh", "lab")
AUTH_METHODS = ("negotiate", "ntlm", "kerberos", "credssp", "basic", "certificate")


@dataclass
class Connection:
    """How to reach one host. Defaults are safe: HTTPS with certificate validation."""

    transport: str = "psrp"
    address: str = ""                 # DNS name or IP; the host's name when not set
    port: int | None = None           # None: the transport's default (5986 HTTPS, 5985 HTTP, 22)
    auth: str = "negotiate"
    tls: bool = True                  # HTTPS; False means HTTP with message encryption
    cert_validation: bool | str = True  # True, False, or a CA bundle path
    allow_unencrypted: bool = False   # Basic over plain HTTP only when this is True
    username: str | None = None
    password: Secret | None = None
    certificate_pem: str | None = None      # auth: certificate
    certificate_key_pem: str | None = None
    known_hosts: str | None = None    # ssh: path; None means the user's default
    host_key_checking: bool = True    # ssh
    connect_timeout: float = 30.0
    read_timeout: float = 60.0
    operation_timeout: float = 20.0


@dataclass
class Host:
    """One target machine: its name, groups (nearest first), merged vars and connection."""

    name: str
    groups: list[str] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)
    connection: Connection = field(default_factory=Connection)
    location: Location | None = None


@dataclass
class Group:
    """A group of hosts: its own vars, direct hosts and child groups."""

    name: str
    vars: dict[str, Any] = field(default_factory=dict)
    hosts: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    location: Location | None = None


@dataclass
class Inventory:
    """All hosts (by name, in file order) and groups of one or more inventory files."""

    hosts: dict[str, Host] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def group_members(self) -> dict[str, list[str]]:
        """Each group's hosts, its descendants' included, in inventory order."""
        members: dict[str, set[str]] = {name: set() for name in self.groups}
        for host in self.hosts.values():
            for group in [*host.groups, "all"]:
                members.setdefault(group, set()).add(host.name)
        order = list(self.hosts)
        return {g: [h for h in order if h in names] for g, names in members.items()}


def load_inventory(paths: list[str]) -> Inventory:
    """Load and merge inventory files; any problem is an `InputError` at its place."""
    from pushinstall.inventory_loader import InventoryLoader

    loader = InventoryLoader()
    for path in paths:
        loader.add_file(path)
    return loader.build()


def select_hosts(inventory: Inventory, pattern: str, limit: str | None = None, *,
                 pattern_location: Location | None = None) -> list[Host]:
    """Hosts matched by the playbook's `pattern` and by `--limit`, in inventory order.

    A pattern or limit that matches no host is an `InputError`.
    """
    from pushinstall.inventory_limit import COMMAND_LINE, select

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
    from pushinstall.inventory_secrets import mask_secrets

    return mask_secrets(value)   # secret-named keys at every depth too


def describe_hosts(inventory: Inventory, limit: str | None = None) -> dict[str, Any]:
    """`{"hosts": {name: [groups]}}` for the hosts `limit` selects (all without one)."""
    hosts = select_hosts(inventory, "all", limit) if inventory.hosts else []
    return {"hosts": {h.name: list(h.groups) for h in hosts}}


def describe_host(inventory: Inventory, name: str) -> dict[str, Any]:
    """One host: groups, merged vars and resolved connection, secrets masked."""
    from pushinstall.inventory_limit import COMMAND_LINE
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
