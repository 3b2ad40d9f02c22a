"""Choose and build a host's transport from its inventory connection.

`make_transport(host)` returns the transport UNOPENED (the engine opens it and retries that open
for transient errors); `open_transport(host)` returns it opened. By `host.connection.transport`:
- `psrp` -> `PSRPTransport`, `winrm` -> `WinRMTransport`, `ssh` -> `SSHTransport`;
- `lab` is not a transport but a place: the runner hands the engine the lab's own factory
  (`pushinstall.lab.connect`), which reaches simulated hosts through these same transports.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from pushinstall.errors import InputError
from pushinstall.model import Host
from pushinstall.secret import Redactor
from pushinstall.transports.base import Transport, opened

MODULES = {"psrp": "pushinstall.transports.psrp", "winrm": "pushinstall.transports.winrm",
           "ssh": "pushinstall.transports.ssh"}


def prepare(hosts: Iterable[Host]) -> None:
    """Make, once, what every connection of these hosts would make first: import their
    transports and compose the agent's text and its packed form (~1 s of compaction and
    zopfli). The engine calls this before it forks its worker processes, which then share
    the result instead of each paying for it."""
    kinds = {host.connection.transport for host in hosts} & MODULES.keys()
    if not kinds:
        return
    from pushinstall.remote import bootstrap, ops

    bootstrap.packed(ops.agent_source())
    bootstrap.agent_hash()
    for kind in sorted(kinds):
        importlib.import_module(MODULES[kind])


def open_transport(host: Host, redactor: Redactor | None = None) -> Transport:
    """The transport for `host`, opened (connected, authenticated, agent defined)."""
    return opened(make_transport(host, redactor))


def make_transport(host: Host, redactor: Redactor | None = None) -> Transport:
    """The transport for `host`, not yet opened."""
    kind = host.connection.transport
    if kind == "psrp":
        from pushinstall.transports.psrp import PSRPTransport

        return PSRPTransport(host, redactor=redactor)
    if kind == "winrm":
        from pushinstall.transports.winrm import WinRMTransport

        return WinRMTransport(host, redactor=redactor)
    if kind == "ssh":
        from pushinstall.transports.ssh import SSHTransport

        return SSHTransport(host, redactor=redactor)
    if kind == "lab":   # a simulated host: the runner connects it (pushinstall.lab.connect)
        raise InputError(f"host '{host.name}': transport 'lab' is reached through the lab's "
                         "own factory", expected="pushinstall.lab.connect.make_transport")
    raise InputError(f"host '{host.name}': unknown transport '{kind}'",
                     expected="psrp, winrm, ssh or lab")
