"""Choose and build a host's transport from its inventory connection.

`make_transport(host)` returns the transport UNOPENED (the engine opens it and retries that open
for transient errors); `open_transport(host)` returns it opened. By `host.connection.transport`:
- `psrp` -> `PSRPTransport`, `winrm` -> `WinRMTransport`, `ssh` -> `SSHTransport`;
- `lab` -> a simulated host from `pushinstall.lab`, reached ON THE WIRE through the process's
  own loopback endpoint, started on first use: by default PSRP over HTTP with NTLM and message
  encryption (`lab.endpoint.wire_host`), so a lab run exercises pypsrp end to end.
  The host var `lab_wire` (or the env var `PUSHINSTALL_LAB_WIRE`, which wins) picks another
  way: `psrp` (default), `winrm`, `ssh`, or `false`/`0` for the in-process `LabTransport` (no
  socket; fast fleet tests).
"""

from __future__ import annotations

import os
from pathlib import Path

from pushinstall.errors import InputError
from pushinstall.model import Host
from pushinstall.secret import Redactor
from pushinstall.transports.base import Transport

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


def open_transport(host: Host, state_dir: Path | None = None,
                   redactor: Redactor | None = None) -> Transport:
    """The transport for `host`, opened (connected, authenticated, agent defined)."""
    transport = make_transport(host, state_dir, redactor)
    try:
        transport.open()
    except BaseException:
        transport.close()
        raise
    return transport


def make_transport(host: Host, state_dir: Path | None = None,
                   redactor: Redactor | None = None) -> Transport:
    """The transport for `host`, not yet opened; lab hosts as described above."""
    kind = host.connection.transport
    if kind == "lab":
        return _lab_transport(host, state_dir, redactor)
    if kind == "psrp":
        from pushinstall.transports.psrp import PSRPTransport

        return PSRPTransport(host, redactor=redactor)
    if kind == "winrm":
        from pushinstall.transports.winrm import WinRMTransport

        return WinRMTransport(host, redactor=redactor)
    if kind == "ssh":
        from pushinstall.transports.ssh import SSHTransport

        return SSHTransport(host, redactor=redactor)
    raise InputError(f"host '{host.name}': unknown transport '{kind}'",
                     expected="psrp, winrm, ssh or lab")


def _lab_transport(host: Host, state_dir: Path | None, redactor: Redactor | None) -> Transport:
    import dataclasses

    wire = lab_wire(host)
    if wire == "inprocess":
        from pushinstall.lab.transport import LabTransport

        return LabTransport(host, state_dir=state_dir, redactor=redactor)
    if wire == "ssh":
        from pushinstall.lab.ssh_server import wire_host as ssh_wire_host

        return make_transport(ssh_wire_host(host, state_dir), redactor=redactor)
    from pushinstall.lab.wsman.endpoint import wire_host

    wired = wire_host(host, state_dir)
    if wire == "winrm":
        wired = dataclasses.replace(
            wired, connection=dataclasses.replace(wired.connection, transport="winrm"))
    return make_transport(wired, redactor=redactor)
