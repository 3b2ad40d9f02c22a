"""The lab's WS-Management service for one simulated host: shells by id, actions by name.

`WSManService.handle(body)` takes a decrypted SOAP request and returns a `Reply`; the HTTP
layer (`http.py`) does transport, authentication, encryption and wire faults. Shells:
- `http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd`: the WinRS cmd shell
  (`shells.CmdShell`, pywinrm);
- `http://schemas.microsoft.com/powershell/<configuration>`: a PowerShell runspace pool
  (`psrp.PsrpShell`, pypsrp).
A shell made before the host restarted is gone after it (fault 2150858843), as on Windows.
With the lab var `winrs_refused: true` a cmd shell's Create answers the access-denied fault
(`soap.access_denied`), as Windows answers a user who may use the PowerShell endpoint but not
WinRS; `refusals` counts those answers (and the receiver commands a shell refused).
"""

from __future__ import annotations

import base64
import threading

from pushinstall.lab.wsman import soap
from pushinstall.lab.wsman.psrp import PsrpShell
from pushinstall.lab.wsman.shells import CmdShell, LabHostLike, Reply, Shell, boot_marker
from pushinstall.lab.wsman.soap import NS, SoapRequest


class WSManService:
    """The shells of one host and the dispatch of every WS-Man action to them."""

    def __init__(self, host: LabHostLike) -> None:
        self.host = host
        self.shells: dict[str, Shell] = {}
        self.refusals = [0]     # shared with the cmd shells, which refuse the receiver
        self._lock = threading.Lock()

    def handle(self, body: bytes) -> Reply:
        """Answer one SOAP request."""
        try:
            request = soap.parse_request(body)
        except ValueError as exc:
            return Reply(soap.fault(None, soap.ACCESS_DENIED, f"bad request: {exc}"), 400)
        if request.verb == "Create":
            return self._create(request)
        shell = self._shell(request)
        if shell is None:
            return Reply(soap.fault(request, soap.SHELL_NOT_FOUND,
                                    f"The request for the Windows Remote Shell with ShellId "
                                    f"{request.shell_id} failed because the shell was not found "
                                    "on the server."), 500)
        if request.verb == "Delete":
            with self._lock:
                self.shells.pop(shell.id, None)
            shell.close()
            return Reply(soap.envelope(request, soap.response_action(request), None))
        return shell.dispatch(request)

    def pending_output(self, body: bytes) -> bool:
        """True when `body` is a Receive for work accepted before the machine went down: its
        answer still reaches the client (as `shutdown /r /t 5` lets it on Windows)."""
        try:
            request = soap.parse_request(body)
        except ValueError:
            return False
        shell = self.shells.get(request.shell_id or "")
        return shell is not None and self._fetches_answer(shell, request)

    @staticmethod
    def _fetches_answer(shell: Shell, request: SoapRequest) -> bool:
        if request.verb != "Receive":
            return False
        desired = request.body.find("rsp:Receive/rsp:DesiredStream", NS)
        return shell.in_flight(desired.get("CommandId") if desired is not None else None)

    def close_all(self) -> None:
        """Forget every shell (endpoint stop)."""
        with self._lock:
            shells, self.shells = list(self.shells.values()), {}
        for shell in shells:
            shell.close()

    def _shell(self, request: SoapRequest) -> Shell | None:
        with self._lock:
            shell = self.shells.get(request.shell_id or "")
            if (shell is not None and shell.boot != boot_marker(self.host)
                    and not self._fetches_answer(shell, request)):
                del self.shells[shell.id]  # the host restarted since
                shell.close()
                return None
            return shell

    def _create(self, request: SoapRequest) -> Reply:
        uri = request.resource_uri
        shell: Shell
        if uri.startswith(soap.PSRP_RESOURCE_PREFIX):
            creation = request.body.find("rsp:Shell/pwsh:creationXml", NS)
            if creation is None:
                return Reply(soap.fault(request, soap.ACCESS_DENIED,
                                        "a PowerShell shell needs creationXml"), 500)
            shell = PsrpShell(self.host, uri, base64.b64decode(creation.text or ""))
        elif uri == soap.CMD_RESOURCE:
            if self.host.lab.winrs_refused is True:
                with self._lock:
                    self.refusals[0] += 1
                return Reply(soap.access_denied(request), 500)
            shell = CmdShell(self.host, uri, self.refusals)
        else:
            return Reply(soap.fault(request, soap.ACCESS_DENIED,
                                    f"the lab serves no resource {uri}"), 500)
        with self._lock:
            self.shells[shell.id] = shell
        return Reply(soap.shell_created(request, shell.id, uri))
