"""The psrp transport (the default): pypsrp `WSMan` + `RunspacePool`, one pipeline per call.

`open()` connects, authenticates and opens ONE runspace pool for the host (one runspace). The
first `call` defines the agent in it and runs its request in the same pipeline: the bootstrap
(`remote/bootstrap.py`) with the agent's hash, the gzipped agent unless the target is known to
hold that copy already, and the request, all as parameters; it answers the session key line and
the request's answer. A request with a secret field waits for the key: the bootstrap then runs
alone first. A target whose cached copy is gone or differs says so, and the agent is sent.
Every later `call` is one `PowerShell` pipeline running the cmdlet `Invoke-PushinstallOp` with
the request as its `-Request` parameter: data, never script text, so Script Block Logging on the
target does not record it; its secret fields are sealed to the key the agent answered when it
was defined (`remote/sealing.py`, docs/ops.md).

Polling, not blocking: a pipeline is started and then polled with Receives that each carry an
OperationTimeout (`Endpoint.poll_s`) shorter than the HTTP read timeout, so the server answers
every poll in time, with output or with "nothing yet"; a 90-minute installer never meets the
read timeout. The step's deadline (`timeout` of `call`) bounds the whole call.

`put_file` (wsman_common.WSManTransportBase) pushes the bytes once-encoded on the stdin of a
WinRS receiver command, in a cmd shell opened beside the pool on the same connection for the
push only (remote/receiver.py, docs/ops.md). A host that refuses that shell (a PowerShell-only
or JEA user, AllowRemoteShellAccess off) gets its pushes as `file_chunk` calls in the pool.

`had_errors` is only True for a Failed pipeline, so the error stream is read too: its records
follow the output when the answer line is looked for.

Auth: negotiate, ntlm, kerberos, credssp, basic, certificate (inventory `auth`). HTTP uses
message encryption (NTLM/Negotiate/Kerberos/CredSSP); HTTPS validates the certificate unless
`cert_validation` is false or names a CA bundle. The transport never re-sends: the pool is
rebuilt on the next call after a transport error, and only `open()` retries a transient
connect failure.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import requests
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from pypsrp.complex_objects import PSInvocationState
from pypsrp.powershell import RunspacePool
from pypsrp.shell import CommandState, Process, WinRS
from pypsrp.wsman import NAMESPACES, SelectorSet, WSMan, WSManAction

from pushinstall.errors import RemoteOpFailed, TransportTimeout
from pushinstall.model import Host
from pushinstall.remote import bootstrap, modules, ops, receiver, sealing
from pushinstall.secret import Redactor
from pushinstall.transports import psrp_session
from pushinstall.transports.sealed_sends import PypsrpStdin, Sealed
from pushinstall.transports.wsman_common import GuardedCommand, WSManTransportBase

UTF8_CODEPAGE = 65001
LOST_CONNECT_S = 5.0   # connect timeout of the clean-up connection close() may open


class _WSMan(psrp_session.WSMan):
    """pypsrp's WSMan, except that a Receive is not re-sent by pypsrp after a read timeout:
    the transport decides (base.py), and a hung server is reported at once."""

    def receive(self, resource_uri: str, resource: Any, option_set: Any = None,
                selector_set: Any = None, timeout: int | None = None) -> Any:
        response = self.invoke(WSManAction.RECEIVE, resource_uri, resource, option_set,
                               selector_set, timeout)
        return response.find("s:Body", namespaces=NAMESPACES)


class _WinRSCommand:
    """The push receiver as a WinRS command beside the runspace pool, on the same WSMan
    connection (and its authenticated, encrypted HTTP session); its shell lives as long as
    the command."""

    def __init__(self, wsman: WSMan, poll_s: int) -> None:
        self.poll_s = poll_s
        self.shell = WinRS(wsman, codepage=UTF8_CODEPAGE, no_profile=True)
        self.shell.open()
        self.process = Process(self.shell, receiver.EXECUTABLE, list(receiver.arguments()))
        try:
            self.process.begin_invoke()
        except BaseException:
            with contextlib.suppress(Exception):   # no command: the shell goes at once
                self.shell.close()
            raise
        self.stdin = PypsrpStdin(wsman, self.shell, self.process.id or "")

    def seal(self, data: bytes, end: bool) -> Sealed:
        return self.stdin.seal(data, end)

    def post(self, sealed: Sealed) -> None:
        self.stdin.post(sealed)

    def output(self) -> str:
        while self.process.state != CommandState.DONE:
            self.process.poll_invoke(timeout=self.poll_s)
        stdout = self.process.stdout.decode("utf-8", "replace")
        return f"{stdout}\n{self.process.stderr.decode('utf-8', 'replace')}"

    def close(self) -> None:
        self.shell.close()


class PSRPTransport(WSManTransportBase):
    """`transports.base.Transport` over PowerShell remoting (see the module docstring)."""

    def __init__(self, host: Host, redactor: Redactor | None = None) -> None:
        super().__init__(host, redactor)
        self._wsman: _WSMan | None = None
        self._pool: RunspacePool | None = None
        self._lost: list[tuple[str, str]] = []   # (resource URI, shell id) after an error
        self._key: RSAPublicKey | None = None
        self._defined = False
        self._modules: set[str] = set()     # the agent modules this pool's session loaded

    # ---- Transport ------------------------------------------------------------------------

    def open(self) -> None:
        """Connect and open the runspace pool: one attempt (the engine retries a transient
        failure, with backoff). The agent is defined by the first call."""
        if self._pool is None:
            self._open_once()

    def call(self, request: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Run `request` in a new pipeline; return its decoded answer."""
        op = str(request.get("op", "?"))
        if self._pool is None:
            self.open()
        request, unwrap = modules.with_modules(request, self._modules)
        with self._watch.call(timeout):
            if not self._defined:
                carried = self._define(request, timeout)
                if carried is not None:
                    return unwrap(ops.decode_answer(carried, host=self.host.name,
                                                    redactor=self.redactor))
            if self._key is not None:
                request = sealing.seal(request, self._key)
            encoded = ops.encode_request(request, pack=True)
            output = self._guard(
                lambda: self._run(ops.AGENT_FUNCTION, op, timeout, {"Request": encoded}), op,
                in_flight=True)
        return unwrap(ops.decode_answer(output, host=self.host.name, redactor=self.redactor))

    def close(self) -> None:
        """Close the pool (deleting the remote shell) and the HTTP session; safe twice."""
        pool, wsman, self._pool, self._wsman = self._pool, self._wsman, None, None
        if pool is not None:
            # A host that is already gone (restarting) has nothing left to close.
            with contextlib.suppress(Exception):
                pool.close()
        if wsman is not None:
            wsman.close()
        if self._lost:  # shells lost to errors: a short-lived connection deletes them
            with contextlib.suppress(Exception), self._new_wsman(LOST_CONNECT_S) as cleanup:
                self._delete_lost(cleanup)
            self._lost = []

    # ---- internals --------------------------------------------------------------------------

    def _receiver(self) -> GuardedCommand:
        wsman = self._wsman
        assert wsman is not None
        return GuardedCommand(lambda func, doing: self._guard(func, doing, in_flight=True),
                              lambda: _WinRSCommand(wsman, self.endpoint.poll_s),
                              self._abandon_receiver)

    def _abandon_receiver(self, command: Any) -> None:
        """The push left this connection unusable: its shells (the receiver's too) are
        deleted over the next one."""
        shell = command.shell
        if shell.id is not None:
            self._lost.append((shell.resource_uri, shell.id))
        self._drop()

    def _session(self) -> requests.Session | None:
        return self._wsman.transport.session if self._wsman is not None else None

    def _connected(self) -> None:
        super()._connected()
        if self._wsman is not None and hasattr(self._wsman.transport, "sent"):
            self.wire.attach_direct(self._wsman.transport)   # its POSTs past requests

    def _new_wsman(self, connect_timeout: float | None = None) -> _WSMan:
        conn, end = self.host.connection, self.endpoint
        # pypsrp takes a CA bundle path for cert_validation and float timeouts (requests
        # does), though its hints say bool and int
        options: dict[str, Any] = {"cert_validation": end.verify,
                                   "connection_timeout": connect_timeout or conn.connect_timeout,
                                   "read_timeout": end.read_timeout}
        if conn.auth == "certificate":
            options.update(certificate_pem=conn.certificate_pem,
                           certificate_key_pem=conn.certificate_key_pem)
        wsman = _WSMan(
            end.address, port=end.port, ssl=end.tls, auth=conn.auth,
            username=conn.username,
            password=conn.password.reveal() if conn.password is not None else None,
            operation_timeout=end.poll_s,
            encryption="never" if conn.auth in ("basic", "certificate") else "auto",
            reconnection_retries=0, no_proxy=True, **options)
        psrp_session.tune_wsman(wsman)    # what need not be redone per host or per request
        self._watch.watch_pypsrp(wsman)   # every connection's exchanges end in time
        return wsman

    def _delete_lost(self, wsman: WSMan) -> None:
        """Delete the shells of pools lost to a transport error, over `wsman` (a new,
        authenticated connection: the lost one's encryption context died with its socket)."""
        lost, self._lost = self._lost, []
        for resource_uri, shell_id in lost:
            selectors = SelectorSet()
            selectors.add_option("ShellId", shell_id)
            with contextlib.suppress(Exception):  # a host that restarted has none left
                wsman.delete(resource_uri, selector_set=selectors)

    def _open_once(self) -> None:
        self.close()
        self._key, self._defined, self._modules = None, False, set()
        wsman = self._new_wsman()
        self._wsman = wsman
        pool = psrp_session.RunspacePool(wsman, min_runspaces=1, max_runspaces=1)
        self._guard(pool.open, "connect", in_flight=False)
        self._pool = pool
        self._connected()
        self._delete_lost(wsman)

    def _define(self, request: dict[str, Any], timeout: float | None) -> str | None:
        """Define the agent (and learn the key); returns the pipeline's output when `request`
        went along and has been answered, None when it is still to be sent."""
        agent = ops.agent_source()
        sha256 = bootstrap.agent_hash(agent)
        carried = None if sealing.has_secret(request) else ops.encode_request(request, pack=True)
        doing = "define the agent" if carried is None else str(request.get("op", "?"))
        with_agent = not self._seen.holds(self._where, sha256)
        output = self._bootstrap(bootstrap.parameters(with_agent, carried, agent), timeout, doing)
        if bootstrap.missing(output) and not with_agent:
            with_agent = True       # the target's copy is gone or differs: nothing ran
            output = self._bootstrap(bootstrap.parameters(True, carried, agent), timeout, doing)
        key = None if bootstrap.missing(output) else sealing.public_key_of(output)
        if key is None:
            self._seen.remember(self._where, None)
            said = next((line.strip() for line in output.splitlines() if line.strip()), "")
            raise RemoteOpFailed(
                "the agent could not be defined: the target did not accept the text sent "
                "(its sha256 differed)" if bootstrap.missing(output) else
                "the agent could not be defined: no session key came back; output began: "
                + (self.redactor.redact(said)[:300] or "(no output)"), host=self.host.name,
                hint="is PowerShell 3.0 or later installed, and is the remote shell PowerShell?",
                error_type="NoAgent")
        self._key, self._defined = key, True
        self._seen.remember(self._where, sha256)
        return None if carried is None else output

    def _bootstrap(self, parameters: dict[str, str | bytes], timeout: float | None,
                   doing: str) -> str:
        return str(self._guard(
            lambda: self._run(bootstrap.script(), doing, timeout, parameters, cmdlet=False),
            doing, in_flight="Request" in parameters))

    def _run(self, script: str, op: str, timeout: float | None,
             parameters: dict[str, str | bytes] | None = None, cmdlet: bool = True) -> str:
        """Run `script` as one pipeline, polling until it ends; output then error records.
        With `parameters` they are the parameters of `script`: a command name (`cmdlet`) or
        a script with a param block."""
        assert self._pool is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        shell = psrp_session.PowerShell(self._pool)
        if parameters is None or not cmdlet:
            shell.add_script(script)
        else:
            shell.add_cmdlet(script)
        if parameters:
            shell.add_parameters(parameters)
        shell.begin_invoke()
        while shell.state == PSInvocationState.RUNNING:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                with contextlib.suppress(Exception):
                    shell.stop()
                raise TransportTimeout(
                    f"no answer to '{op}' within {timeout:g} s; the target may still be "
                    "running it", host=self.host.name,
                    hint="raise the step's timeout, or check the target before running again")
            poll = self.endpoint.poll_s if left is None else max(1, min(self.endpoint.poll_s,
                                                                         int(left) + 1))
            shell.poll_invoke(timeout=poll)
        lines = [str(item) for item in shell.output]
        lines += [str(record) for record in shell.streams.error]
        return "\n".join(lines)

    def _drop(self) -> None:
        """After a transport error: the pool is rebuilt by the next call, and this one is
        deleted over the next connection (`_open_once`, or close()) when it still can be."""
        if self._pool is not None and self._pool.shell.id is not None:
            self._lost.append((self._pool.shell.resource_uri, self._pool.shell.id))
        self._pool = None
