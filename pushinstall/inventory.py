"""Inventory: an Ansible-compatible YAML inventory -> `Inventory(hosts, groups)`.

(Data model first; the loader is built in issue 2.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pushinstall.errors import Location
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
