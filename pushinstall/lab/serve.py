"""`pushinstall lab serve`: an inventory's lab hosts on loopback ports, until Ctrl-C.

Every `transport: lab` host of the inventory is served from the SAME state dir as `run`
(`paths.state_dir`), so the served machines are the ones earlier runs left
behind, and what is done to them over the wire is kept for later runs. Each host gets three
ports on 127.0.0.1: WS-Man over HTTP (NTLM/Negotiate with message encryption), WS-Man over
HTTPS (a certificate made at start; its PEM is what clients trust) and SSH. With `base_port`
host number i (inventory order, from 0) listens on `base_port + 3i` (HTTP), `+ 3i + 1` (HTTPS)
and `+ 3i + 2` (SSH); without it on free ports.

The written inventory points at the served hosts as real Windows machines: each host with
`transport` psrp (or winrm or ssh: the `transport` argument, else the host's `lab_wire` var),
`address: 127.0.0.1`, its port, `auth: ntlm`, `tls: false` (message encryption) or, with
`tls`, HTTPS with `cert_validation: <ca file>`; the username, and the password and every other
secret var as `{file: ...}` references to files written beside it (mode 0600): the inventory
itself never holds a secret. The host's other vars are copied (not `lab` and `lab_wire`, which
only mean something to a lab host), its groups kept, so a playbook runs against it unchanged.
Those files live in `<inventory stem>.d/` beside the inventory and stay after the server stops.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import yaml

from pushinstall import paths
from pushinstall.errors import InputError
from pushinstall.inventory import load_inventory
from pushinstall.inventory.connection import ALIASES, CONNECTION_VARS
from pushinstall.inventory.limit import COMMAND_LINE
from pushinstall.lab import lab_host
from pushinstall.lab.ssh_server import SSHLabEndpoint
from pushinstall.lab.wsman.endpoint import LAB_PASSWORD, LAB_USERNAME, WSManLabEndpoint
from pushinstall.model import Host, Inventory
from pushinstall.secret import Secret
from pushinstall.validate import check_lab_vars

LOOPBACK = "127.0.0.1"
SERVE_TRANSPORTS = ("psrp", "winrm", "ssh")
PORTS_PER_HOST = 3
LAB_ONLY_VARS = ("lab", "lab_wire")
_DROPPED_VARS = {*CONNECTION_VARS, *ALIASES, *LAB_ONLY_VARS}


@dataclass(frozen=True)
class ServedHost:
    """Where one lab host is served and how the written inventory reaches it."""

    name: str
    username: str
    http_port: int
    https_port: int
    ssh_port: int
    transport: str  # psrp, winrm or ssh: what the written inventory says

    @property
    def http_url(self) -> str:
        """The WS-Man URL over HTTP (message encryption)."""
        return f"http://{LOOPBACK}:{self.http_port}/wsman"

    @property
    def https_url(self) -> str:
        """The WS-Man URL over HTTPS."""
        return f"https://{LOOPBACK}:{self.https_port}/wsman"


def lab_hosts(inventory: Inventory) -> list[Host]:
    """The inventory's `transport: lab` hosts, in inventory order; none is an `InputError`."""
    hosts = [h for h in inventory.hosts.values() if h.connection.transport == "lab"]
    if not hosts:
        raise InputError("the inventory has no lab hosts to serve", COMMAND_LINE,
                         "an inventory with 'transport: lab' hosts")
    seen: set[int] = set()
    for host in hosts:   # located, as `run` reports them
        check_lab_vars(host, seen)
    return hosts


def _wire_of(host: Host, transport: str | None) -> str:
    """The written inventory's transport for `host`: the option, else `lab_wire`, else psrp."""
    if transport:
        return transport
    wire = str(host.vars.get("lab_wire", "psrp")).strip().lower()
    return wire if wire in SERVE_TRANSPORTS else "psrp"


class LabServer:
    """Serves lab hosts over WS-Man (HTTP and HTTPS) and SSH. A context manager.

    `work_dir` holds the certificate, the known_hosts file and the secret files; the caller
    owns it. `hosts` are inventory hosts with `transport: lab`.
    """

    def __init__(self, hosts: list[Host], work_dir: Path, *, state_dir: Path | None = None,
                 base_port: int | None = None, transport: str | None = None) -> None:
        self.hosts = hosts
        self.work_dir = work_dir
        self.state_dir = state_dir or paths.state_dir()
        self.base_port = base_port
        self.transport = transport
        self.wsman = WSManLabEndpoint(work_dir / "wsman")
        self.ssh = SSHLabEndpoint(work_dir / "ssh")
        self.served: list[ServedHost] = []

    def __enter__(self) -> LabServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def ca_file(self) -> Path:
        """The PEM certificate an HTTPS client trusts."""
        return self.wsman.ca_file

    @property
    def known_hosts(self) -> Path:
        """The known_hosts file with every served host's SSH key."""
        return self.ssh.known_hosts

    def start(self) -> list[ServedHost]:
        """Serve every host; a `base_port` range that does not fit or is taken is `InputError`.

        On failure nothing stays served."""
        if self.base_port is not None and \
                self.base_port + PORTS_PER_HOST * len(self.hosts) - 1 > 65535:
            raise InputError(f"--base-port {self.base_port} leaves no room for "
                             f"{PORTS_PER_HOST * len(self.hosts)} ports", COMMAND_LINE,
                             "a lower --base-port")
        self.wsman.start()
        self.ssh.start()
        try:
            for index, host in enumerate(self.hosts):
                self.served.append(self._serve(index, host))
        except BaseException:
            self.stop()
            raise
        return self.served

    def _serve(self, index: int, host: Host) -> ServedHost:
        model = lab_host(host.name, host.vars.get("lab"), self.state_dir)
        username = host.connection.username or LAB_USERNAME
        password = (host.connection.password or Secret(LAB_PASSWORD)).reveal()
        ports = [0] * PORTS_PER_HOST
        if self.base_port is not None:
            ports = [self.base_port + PORTS_PER_HOST * index + k for k in range(PORTS_PER_HOST)]
        try:
            where = self.wsman.add_host(model, username=username, password=password,
                                        http_port=ports[0], https_port=ports[1])
            ssh_port = self.ssh.add_host(model, username=username, password=password,
                                         port=ports[2])
        except OSError as error:
            raise InputError(f"cannot serve lab host '{host.name}' on ports "
                             f"{', '.join(map(str, ports))}: {error.strerror or error}",
                             COMMAND_LINE, "a --base-port whose ports are free") from None
        return ServedHost(host.name, username, where.http_port, where.https_port, ssh_port,
                          _wire_of(host, self.transport))

    def stop(self) -> None:
        """Close every port and connection; safe to call twice."""
        self.wsman.stop()
        self.ssh.stop()

    def counters(self, name: str) -> dict[str, int]:
        """Traffic host `name` has seen on all its ports: connections, requests, bytes_in,
        bytes_out (WS-Man and SSH added up)."""
        wsman, ssh = self.wsman.counters(name), self.ssh.counters(name)
        return {key: getattr(wsman, key) + getattr(ssh, key)
                for key in ("connections", "requests", "bytes_in", "bytes_out")}

    def write_inventory(self, path: Path, inventory: Inventory, *, tls: bool = False) -> Path:
        """Write an inventory at `path` pointing at the served hosts (see the module
        docstring); secret files go to `work_dir/secrets`. Returns `path`."""
        secrets = _SecretFiles(self.work_dir / "secrets")
        served = {s.name: s for s in self.served}
        entries: dict[str, dict[str, Any]] = {}
        for host in self.hosts:
            entry = self._connection_vars(served[host.name], host, secrets, tls)
            for key, value in host.vars.items():
                if key not in _DROPPED_VARS:
                    entry[key] = secrets.plain(key, value)
            entries[host.name] = entry
        document = {"all": _group_tree(inventory, "all", entries)}
        header = ("# Written by `pushinstall lab serve`: the lab hosts it serves on loopback.\n"
                  "# Valid while that command runs; secrets are {file:} references.\n")
        # one rename: a reader polling for the file never sees half of it
        paths.write_atomic(path, header + yaml.safe_dump(document, sort_keys=False,
                                                         default_flow_style=False))
        return path

    def _connection_vars(self, served: ServedHost, host: Host, secrets: _SecretFiles,
                         tls: bool) -> dict[str, Any]:
        password = host.connection.password or Secret(LAB_PASSWORD)
        entry: dict[str, Any] = {"transport": served.transport, "address": LOOPBACK}
        if served.transport == "ssh":
            entry |= {"port": served.ssh_port, "known_hosts": str(self.known_hosts.resolve()),
                      "host_key_checking": True}
        elif tls:
            entry |= {"port": served.https_port, "auth": "ntlm", "tls": True,
                      "cert_validation": str(self.ca_file.resolve())}
        else:
            entry |= {"port": served.http_port, "auth": "ntlm", "tls": False}
        entry |= {"username": served.username, "password": secrets.ref("password", password)}
        return entry


class _SecretFiles:
    """Secret values written to files (0600) once each, referenced as `{file: PATH}`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._paths: dict[tuple[str, str], Path] = {}

    def ref(self, var: str, secret: Secret) -> dict[str, str]:
        """`{file: PATH}` of a file holding `secret` (the same file for the same var and
        value)."""
        value = secret.reveal()
        path = self._paths.get((var, value))
        if path is None:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in var)
            taken = sum(1 for known_var, _ in self._paths if known_var == var)
            # numbered, not named by a hash of the value: a name must not help guess a secret
            path = self.directory / (f"{safe}-{taken + 1}.txt" if taken else f"{safe}.txt")
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(value)
            self._paths[(var, value)] = path
        return {"file": str(path.resolve())}

    def plain(self, var: str, value: Any) -> Any:
        """`value` as plain YAML data, every `Secret` inside as a `{file:}` reference."""
        if isinstance(value, Secret):
            return self.ref(var, value)
        if isinstance(value, dict):
            return {str(k): self.plain(f"{var}.{k}", v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.plain(var, v) for v in value]
        return value


def _group_tree(inventory: Inventory, name: str, entries: dict[str, dict[str, Any]],
                ) -> dict[str, Any]:
    """Group `name` as inventory YAML: its served hosts (each one's vars where it first
    appears, later mentions empty) and child groups that hold served hosts."""
    group = inventory.groups.get(name)
    node: dict[str, Any] = {}
    direct = [h for h in (group.hosts if group else []) if h in entries]
    if name == "all":  # hosts in no group at all
        direct = [h for h in entries if not inventory.hosts[h].groups]
    if direct:
        node["hosts"] = {h: entries.pop(h, None) for h in direct}
    children: dict[str, Any] = {}
    for child in group.children if group else []:
        subtree = _group_tree(inventory, child, entries)
        if subtree:
            children[child] = subtree
    if children:
        node["children"] = children
    return node


def format_table(served: list[ServedHost]) -> str:
    """The address table an admin reads: host, WS-Man URLs, SSH port, username, transport."""
    rows = [("HOST", "HTTP (encrypted)", "HTTPS", "SSH", "USER", "WRITTEN AS")]
    rows += [(s.name, s.http_url, s.https_url, f"{LOOPBACK}:{s.ssh_port}", s.username,
              s.transport) for s in served]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
                     .rstrip() for row in rows)


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set `stop` (main thread only; elsewhere the caller sets it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve_command(inventories: list[str], base_port: int | None, write_inventory: str | None,
                  *, transport: str | None = None, tls: bool = False,
                  stop: threading.Event | None = None) -> None:
    """`pushinstall lab serve`: serve, print the table, write the inventory, wait for Ctrl-C
    (SIGINT or SIGTERM) or `stop`, then close every port and return."""
    inventory = load_inventory(inventories)
    hosts = lab_hosts(inventory)
    stop = stop or threading.Event()
    if write_inventory:
        target = Path(write_inventory)
        if target.exists() and not target.is_file():
            raise InputError(f"--write-inventory: {target} exists and is not a regular file",
                             COMMAND_LINE, "a path for a new inventory file")
        work_dir, temporary = target.with_name(target.stem + ".d"), False
    else:
        work_dir, temporary = Path(tempfile.mkdtemp(prefix="pushinstall-lab-serve-")), True
    try:
        with _stop_on_signals(stop), LabServer(hosts, work_dir, base_port=base_port,
                                               transport=transport) as server:
            click.echo(format_table(server.served))
            click.echo(f"HTTPS certificate: {server.ca_file.resolve()}")
            click.echo(f"SSH known_hosts:   {server.known_hosts.resolve()}")
            if write_inventory:
                written = server.write_inventory(Path(write_inventory), inventory, tls=tls)
                click.echo(f"inventory written: {written}")
            click.echo(f"serving {len(server.served)} lab hosts; Ctrl-C to stop", err=True)
            while not stop.wait(0.2):
                pass
        click.echo("stopped", err=True)
    finally:
        if temporary:
            shutil.rmtree(work_dir, ignore_errors=True)


__all__ = ["LabServer", "ServedHost", "format_table", "lab_hosts", "serve_command"]
