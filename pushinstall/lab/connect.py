"""How a run reaches simulated hosts: the engine's transport factory for `transport: lab`.

The lab is a place, not a transport. A lab host is reached ON THE WIRE through this process's
own loopback endpoint, started on first use: by default PSRP over HTTP with NTLM and message
encryption (`lab.wsman.endpoint.wire_host`), so a lab run exercises pypsrp end to end. The
host var `lab_wire` (or the env var `PUSHINSTALL_LAB_WIRE`, which wins) picks another way:
`psrp` (default), `winrm`, `ssh`, or `false`/`0` for the in-process `LabTransport` (no socket;
fast fleet tests). Every other host goes to `transports.factory.make_transport`.

The runner hands `make_transport` to the engine and `PROCESS_HOOKS` to its worker processes.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from pushinstall.engine.workers import ProcessHooks
from pushinstall.errors import InputError
from pushinstall.lab.flusher import flush_all
from pushinstall.lab.pools import stop_all
from pushinstall.model import Host
from pushinstall.secret import Redactor
from pushinstall.transports import factory
from pushinstall.transports.base import Transport, opened

LAB_WIRE_ENV = "PUSHINSTALL_LAB_WIRE"
LAB_WIRE_VAR = "lab_wire"
LAB_WIRES = ("psrp", "winrm", "ssh", "inprocess")
_OFF = {"0", "false", "no", "off", "inprocess"}


def lab_wire(host: Host) -> str:
    """How a lab host is reached: one of LAB_WIRES (see the module docstring)."""
    raw = os.environ.get(LAB_WIRE_ENV) or host.vars.get(LAB_WIRE_VAR, "psrp")
    text = str(raw).strip().lower()
    if raw is False or text in _OFF:
        return "inprocess"
    if text in ("1", "true", "yes", "on"):
        return "psrp"
    if text not in LAB_WIRES:
        raise InputError(f"host '{host.name}': {LAB_WIRE_VAR} is '{raw}'",
                         expected="psrp, winrm, ssh or false")
    return text


def make_transport(host: Host, state_dir: Path | None = None,
                   redactor: Redactor | None = None) -> Transport:
    """The transport for `host`, not yet opened: lab hosts as above, others as usual."""
    if host.connection.transport != "lab":
        return factory.make_transport(host, redactor)
    wire = lab_wire(host)
    if wire == "inprocess":
        from pushinstall.lab.transport import LabTransport

        return LabTransport(host, state_dir=state_dir, redactor=redactor)
    if wire == "ssh":
        from pushinstall.lab.ssh_server import wire_host as ssh_wire_host

        return factory.make_transport(ssh_wire_host(host, state_dir), redactor)
    from pushinstall.lab.wsman.endpoint import wire_host

    wired = wire_host(host, state_dir)
    if wire == "winrm":
        wired = dataclasses.replace(
            wired, connection=dataclasses.replace(wired.connection, transport="winrm"))
    return factory.make_transport(wired, redactor)


def open_transport(host: Host, state_dir: Path | None = None,
                   redactor: Redactor | None = None) -> Transport:
    """The transport for `host`, opened (connected, authenticated, agent defined)."""
    return opened(make_transport(host, state_dir, redactor))


def _leave_worker() -> None:
    """What exit handlers do in the parent, for a worker: save the simulated hosts it changed,
    stop the lab endpoints it started."""
    flush_all()
    stop_all()


# what this process did to lab hosts is on disk before workers fork and read it
PROCESS_HOOKS = ProcessHooks(before_fork=flush_all, at_worker_exit=_leave_worker)
