"""The lab transport: a simulated host (`pushinstall.lab`) reached in-process.

No socket, but the real protocol path: each request becomes the PowerShell line the other
transports send (`ops.invocation`), the host answers through `LabHost.handle_line`, and the
answer line is read back with `ops.decode_answer`. Connection faults come from the host's
`lab:` var: `unreachable`, `bad_credentials`, the dark window of a reboot,
`refuse_first_connects`, `drop_connection_on` and `latency_ms`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pushinstall.errors import AuthenticationFailed, TransportError, Unreachable
from pushinstall.lab import LabHost, lab_host
from pushinstall.model import Host
from pushinstall.remote import ops
from pushinstall.secret import Redactor
from pushinstall.transports.push import push_file


class LabTransport:
    """`transports.base.Transport` over the process's shared LabHost for `host`."""

    def __init__(self, host: Host, state_dir: Path | None = None,
                 redactor: Redactor | None = None) -> None:
        self.host = host
        self.lab: LabHost = lab_host(host.name, host.vars.get("lab"), state_dir)
        self.redactor = redactor
        self._open = False

    def _check_fault(self) -> None:
        fault = self.lab.connection_fault()
        if fault == "unreachable":
            raise Unreachable("connection refused (lab host is down)", host=self.host.name,
                              hint="the lab var 'unreachable' is set, or the host is "
                                   "restarting")
        if fault == "bad_credentials":
            raise AuthenticationFailed("the host refused the credentials (401)",
                                       host=self.host.name,
                                       hint="check the username and password for this host")

    def open(self) -> None:
        """Connect: the host's connection faults apply."""
        if self.lab.refuses_connect():
            raise Unreachable("connection reset by peer", host=self.host.name,
                              hint="the lab var 'refuse_first_connects' is set")
        self._check_fault()
        self._open = True

    def call(self, request: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """One request through the real encode/decode path; latency and faults apply."""
        if not self._open:
            raise TransportError("call before open", host=self.host.name)
        if self.lab.latency > 0:
            time.sleep(self.lab.latency)
        self._check_fault()
        output = self.lab.handle_line(ops.invocation(request))
        if request.get("op") in self.lab.lab.drop_connection_on:
            raise Unreachable("connection reset while reading the answer", host=self.host.name,
                              hint="the lab var 'drop_connection_on' names this op")
        return ops.decode_answer(output, host=self.host.name, redactor=self.redactor)

    def put_file(self, local: Path, remote: str, sha256: str) -> dict[str, Any]:
        """Push `local` in 1 MiB chunks (`transports.push.push_file`)."""
        return push_file(self, local, remote, sha256, host=self.host.name)

    def close(self) -> None:
        """Nothing to release; safe to call twice."""
        self._open = False
