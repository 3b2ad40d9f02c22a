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
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from pypsrp.complex_objects import PSInvocationState
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import NAMESPACES, WSMan, WSManAction

from pushinstall.errors import HostError, RemoteOpFailed, TransportTimeout
from pushinstall.model import Host
from pushinstall.remote import bootstrap, ops, sealing
from pushinstall.secret import Redactor
from pushinstall.transports.push import push_file
from pushinstall.transports.wsman_common import (
    Endpoint,
    ExchangeWatch,
    endpoint_of,
    map_error,
)

# One call's request string is at most this big (file_chunk); pypsrp fragments it over Sends.
CHUNK_SIZE = 1024 * 1024


class _WSMan(WSMan):
    """pypsrp's WSMan, except that a Receive is not re-sent by pypsrp after a read timeout:
    the transport decides (base.py), and a hung server is reported at once."""

    def receive(self, resource_uri: str, resource: Any, option_set: Any = None,
                selector_set: Any = None, timeout: int | None = None) -> Any:
        response = self.invoke(WSManAction.RECEIVE, resource_uri, resource, option_set,
                               selector_set, timeout)
        return response.find("s:Body", namespaces=NAMESPACES)


class PSRPTransport:
    """`transports.base.Transport` over PowerShell remoting (see the module docstring)."""

    def __init__(self, host: Host, redactor: Redactor | None = None) -> None:
        self.host = host
        self.endpoint: Endpoint = endpoint_of(host)
        self._watch = ExchangeWatch(self.endpoint)   # every HTTP exchange ends in time
        self.redactor = redactor or Redactor()
        if host.connection.password is not None:
            self.redactor.add(host.connection.password)
        self._wsman: _WSMan | None = None
        self._pool: RunspacePool | None = None
        self._key: RSAPublicKey | None = None
        self._defined = False
        self._seen = bootstrap.Seen()
        self._where = f"{self.endpoint.address}:{self.endpoint.port}"

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
        with self._watch.call(timeout):
            if not self._defined:
                carried = self._define(request, timeout)
                if carried is not None:
                    return ops.decode_answer(carried, host=self.host.name,
                                             redactor=self.redactor)
            if self._key is not None:
                request = sealing.seal(request, self._key)
            encoded = ops.encode_request(request, pack=True)
            output = self._guard(
                lambda: self._run(ops.AGENT_FUNCTION, op, timeout, {"Request": encoded}), op,
                in_flight=True)
        return ops.decode_answer(output, host=self.host.name, redactor=self.redactor)

    def put_file(self, local: Path, remote: str, sha256: str) -> dict[str, Any]:
        """Push `local` in 1 MiB `file_chunk` calls over the open pool (sha256 checked)."""
        return push_file(self, local, remote, sha256, host=self.host.name,
                         chunk_size=CHUNK_SIZE)

    def close(self) -> None:
        """Close the pool (deleting the remote shell) and the HTTP session; safe twice."""
        pool, wsman, self._pool, self._wsman = self._pool, self._wsman, None, None
        if pool is not None:
            # A host that is already gone (restarting) has nothing left to close.
            with contextlib.suppress(Exception):
                pool.close()
        if wsman is not None:
            wsman.close()

    # ---- internals --------------------------------------------------------------------------

    def _open_once(self) -> None:
        self.close()
        self._key, self._defined = None, False
        conn, end = self.host.connection, self.endpoint
        # pypsrp takes a CA bundle path for cert_validation and float timeouts (requests
        # does), though its hints say bool and int
        options: dict[str, Any] = {"cert_validation": end.verify,
                                   "connection_timeout": conn.connect_timeout,
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
        self._wsman = wsman
        self._watch.watch_pypsrp(wsman)
        pool = RunspacePool(wsman, min_runspaces=1, max_runspaces=1)
        self._guard(pool.open, "connect", in_flight=False)
        self._pool = pool

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
        shell = PowerShell(self._pool)
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

    def _guard(self, func: Any, doing: str, in_flight: bool) -> Any:
        """Run `func`, mapping library exceptions into errors.py once, here; after a
        transport error the pool is dropped, to be rebuilt by the next call."""
        try:
            return func()
        except HostError:
            self._pool = None
            raise
        except Exception as exc:  # mapped below; anything unknown stays a TransportError
            self._pool = None
            raise map_error(exc, self.endpoint, doing, in_flight, self.redactor) from exc
