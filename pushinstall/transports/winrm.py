"""The winrm transport: pywinrm's `Protocol`, one WinRS cmd shell per host per run.

One agent process per connection: the first `call` runs `powershell -NoProfile -NonInteractive
-Command -` in the shell and writes `remote.stdin.session_script` on its stdin (a cmd.exe
command line stops at 8191 characters while the agent alone is far longer): the bootstrap line,
the agent's hash, the packed agent unless the target is known to hold that copy already
(`bootstrap.Seen`), then the loop line, and the first request's line unless it has a secret
field (one Send, as the PSRP bootstrap carries its request). A target whose cached copy is
gone or differs says so and that process ends before it reads its loop line; a new one gets
the agent. The agent answers with its session key line, then reads request lines: each
`call` is one request line on the same stdin (packed as over PSRP), its secret fields sealed
to that key, read by the agent as data, and one answer line back. Stdin goes in Sends of at
most `STDIN_BLOCK` bytes, below the server's MaxEnvelopeSize. A timeout or a transport error
ends that process (the request is never re-sent); the next call starts a new one. Closing
deletes the shell, which terminates its commands (MS-WSMV 3.1.4.4.1): no Signal first.

`put_file` (wsman_common.WSManTransportBase) runs the push receiver as a second command in
the shell and writes the file's raw bytes on its stdin (remote/receiver.py, docs/ops.md); when
the host refuses that command, the bytes go as `file_chunk` calls to the agent process.

Output is polled: each Receive carries an OperationTimeout shorter than the HTTP read timeout
and the server answers it in time, with output or "nothing yet". PowerShell writes its error
stream to stderr as CLIXML (`#< CLIXML`); it is turned back into text.

pywinrm knows no SPNEGO: `negotiate` is NTLM here (Kerberos needs `auth: kerberos` and
requests-kerberos). Everything else as in the psrp transport.
"""

from __future__ import annotations

import contextlib
import html
import re
import time
from typing import Any

import requests
from winrm.exceptions import WinRMOperationTimeoutError
from winrm.protocol import Protocol

from pushinstall.errors import TransportTimeout
from pushinstall.model import Host
from pushinstall.remote import bootstrap, modules, ops, receiver, sealing
from pushinstall.remote.stdin import Lines, request_line, session_script
from pushinstall.secret import Redactor
from pushinstall.transports.sealed_sends import PywinrmStdin, Sealed
from pushinstall.transports.wsman_common import GuardedCommand, WSManTransportBase

STDIN_BLOCK = 96 * 1024   # base64 of it plus the envelope stays under 150 KiB (Server 2008)
UTF8_CODEPAGE = 65001
_AUTH = {"negotiate": "ntlm", "ntlm": "ntlm", "kerberos": "kerberos", "credssp": "credssp",
         "basic": "basic", "certificate": "certificate"}
_CLIXML_STRING = re.compile(r'<S S="Error">(.*?)</S>', re.S)


def strip_clixml(text: str) -> str:
    """stderr as text: PowerShell's `#< CLIXML` error records become their lines."""
    if not text.lstrip().startswith("#< CLIXML"):
        return text
    parts = [html.unescape(m) for m in _CLIXML_STRING.findall(text)]
    joined = "".join(parts)
    # CLIXML escapes control characters as _xHHHH_.
    joined = re.sub(r"_x([0-9A-Fa-f]{4})_", lambda m: chr(int(m.group(1), 16)), joined)
    return joined


class _ReceiverCommand:
    """The push receiver as a second command in the host's WinRS shell."""

    def __init__(self, protocol: Protocol, shell_id: str) -> None:
        self.protocol, self.shell_id = protocol, shell_id
        self.command_id = protocol.run_command(shell_id, receiver.EXECUTABLE,
                                               list(receiver.arguments()))
        self.stdin = PywinrmStdin(protocol, shell_id, self.command_id)

    def seal(self, data: bytes, end: bool) -> Sealed:
        return self.stdin.seal(data, end)

    def post(self, sealed: Sealed) -> None:
        self.stdin.post(sealed)

    def output(self) -> str:
        stdout, stderr, done = bytearray(), bytearray(), False
        while not done:
            try:
                out, err, _code, done = self.protocol.get_command_output_raw(self.shell_id,
                                                                             self.command_id)
            except WinRMOperationTimeoutError:
                continue  # nothing yet: poll again
            stdout += out
            stderr += err
        return f"{stdout.decode('utf-8', 'replace')}\n{stderr.decode('utf-8', 'replace')}"

    def close(self) -> None:
        self.protocol.cleanup_command(self.shell_id, self.command_id)


class WinRMTransport(WSManTransportBase):
    """`transports.base.Transport` over WinRS with pywinrm (see the module docstring)."""

    def __init__(self, host: Host, redactor: Redactor | None = None) -> None:
        super().__init__(host, redactor)
        self._protocol: Protocol | None = None
        self._shell_id: str | None = None
        self._lost: list[str] = []   # shells dropped after an error, closed by close()
        self._agent: str | None = None
        self._command_id: str | None = None
        self._key: Any = None
        self._modules: set[str] = set()     # the agent modules this process loaded
        self._lines = Lines()
        self._early: list[str] = []         # lines read past the last sentinel
        self._early_err = b""               # and the stderr that came with them
        self._ended = False                 # the process ended behind them

    # ---- Transport ------------------------------------------------------------------------

    def open(self) -> None:
        """Authenticate and open the shell: one attempt (the engine retries a transient
        failure, with backoff)."""
        if self._shell_id is None:
            self._open_once()

    def call(self, request: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Send `request` to this connection's agent process; return its decoded answer. A new
        process gets the request with its session script, as the PSRP bootstrap carries it,
        unless it has a secret field: that is sealed to the key the process answers first."""
        op = str(request.get("op", "?"))
        if self._shell_id is None:
            self.open()
        fresh = self._command_id is None
        if fresh:
            self._modules = set()   # a new process has loaded none
        request, unwrap = modules.with_modules(request, self._modules)
        carried = fresh and not sealing.has_secret(request)
        if fresh:
            first = self._line(request) if carried else None
            refused = self._guard(lambda: self._start(first), op if carried else "connect",
                                  in_flight=carried)
            if refused is not None:     # the process ended without its key line
                return ops.decode_answer(refused, host=self.host.name, redactor=self.redactor)
        line = None if carried else self._line(request)
        with self._watch.call(timeout):
            output = self._guard(lambda: self._exchange(line, op, timeout), op, in_flight=True)
        return unwrap(ops.decode_answer(output, host=self.host.name, redactor=self.redactor))

    def close(self) -> None:
        """Close the shell and the HTTP session; safe to call twice."""
        protocol, shell_id, self._protocol, self._shell_id = (self._protocol, self._shell_id,
                                                              None, None)
        if protocol is not None:
            # No Signal for the agent process: deleting its shell terminates the shell's
            # commands (MS-WSMV 3.1.4.4.1), one request fewer on every run.
            self._command_id = None
            if shell_id is not None:
                with contextlib.suppress(Exception):  # a host that is gone has nothing to close
                    protocol.close_shell(shell_id, close_session=False)
            protocol.transport.close_session()
        if self._lost:  # shells lost to errors: a short-lived connection closes them
            with contextlib.suppress(Exception):
                cleanup = self._new_protocol()
                try:
                    self._close_lost(cleanup)
                finally:
                    cleanup.transport.close_session()
            self._lost = []

    # ---- internals --------------------------------------------------------------------------

    def _receiver(self) -> GuardedCommand:
        protocol, shell_id = self._protocol, self._shell_id
        assert protocol is not None and shell_id is not None
        return GuardedCommand(lambda func, doing: self._guard(func, doing, in_flight=True),
                              lambda: _ReceiverCommand(protocol, shell_id),
                              lambda command: self._drop())   # the shell goes, and both its
        # commands with it, over the next connection: this one can carry nothing more

    def _session(self) -> requests.Session | None:
        return self._protocol.transport.session if self._protocol is not None else None

    def _new_protocol(self) -> Protocol:
        conn, end = self.host.connection, self.endpoint
        verify = end.verify
        # pywinrm takes float timeouts and no CA path (None), though its hints say otherwise
        options: dict[str, Any] = {"transport": _AUTH[conn.auth],
                                   "ca_trust_path": verify if isinstance(verify, str) else None,
                                   "read_timeout_sec": end.read_timeout}
        protocol = Protocol(
            end.url, username=conn.username,
            password=conn.password.reveal() if conn.password is not None else None,
            server_cert_validation="validate" if verify is not False else "ignore",
            cert_pem=conn.certificate_pem, cert_key_pem=conn.certificate_key_pem,
            operation_timeout_sec=end.poll_s,
            message_encryption="never" if conn.auth in ("basic", "certificate") else "auto",
            proxy=None, **options)
        self._watch.watch_pywinrm(protocol)   # every connection's exchanges end in time
        return protocol

    def _close_lost(self, protocol: Protocol) -> None:
        """Close the shells lost to a transport error, over `protocol` (a new, authenticated
        connection: the lost one's encryption context died with its socket)."""
        lost, self._lost = self._lost, []
        for shell_id in lost:
            with contextlib.suppress(Exception):  # a host that restarted has none left
                protocol.close_shell(shell_id, close_session=False)

    def _open_once(self) -> None:
        self.close()
        protocol = self._new_protocol()
        self._protocol = protocol
        self._shell_id = self._guard(
            lambda: protocol.open_shell(codepage=UTF8_CODEPAGE, noprofile=True), "connect",
            in_flight=False)
        self._connected()
        self._close_lost(protocol)
        self._agent = ops.agent_source()

    def _line(self, request: dict[str, Any]) -> str:
        """`request` as one stdin line, its secret fields sealed to this process's key."""
        sealed = request if self._key is None else sealing.seal(request, self._key)
        return request_line(ops.encode_request(sealed, pack=True))

    def _start(self, carried: str | None) -> str | None:
        """Start the agent process and read its key line; the output when it ended first.
        The agent goes along unless the target is known to hold it; a target whose copy is
        gone or differs says so and ends that process (the loop, and `carried` after it, were
        never read), and a new one gets the agent. `carried`, a request line, follows the
        session script: the loop reads it once it has written the key line."""
        agent = self._agent
        assert agent is not None
        sha256 = bootstrap.agent_hash(agent)
        with_agent = not self._seen.holds(self._where, sha256)
        after = carried or ""
        refused = self._start_process(session_script(with_agent, agent) + after, bool(after))
        if refused is not None and bootstrap.missing(refused) and not with_agent:
            refused = self._start_process(session_script(True, agent) + after, bool(after))
        self._seen.remember(self._where, sha256 if refused is None else None)
        return refused

    def _start_process(self, script: str, carried: bool) -> str | None:
        """One agent process fed `script` (with a request line at its end when `carried`):
        None once its key line came, else its output (the process ended; it is cleaned up)."""
        protocol, shell_id = self._protocol, self._shell_id
        assert protocol is not None and shell_id is not None
        # nothing of a carried request has gone yet: a failure here is a connect's
        self._command_id = self._guard(lambda: protocol.run_command(
            shell_id, "powershell", ["-NoProfile", "-NonInteractive", "-Command", "-"]),
            "connect", in_flight=False)
        self._lines, self._early, self._early_err, self._ended = Lines(), [], b"", False
        self._send(script.encode("utf-8"))
        deadline = time.monotonic() + max(self.endpoint.read_timeout, 1.0)
        output, done = self._read_until(sealing.KEY_SENTINEL, deadline, "connect", None,
                                        carried)
        self._key = sealing.public_key_of(output) if not done else None
        if self._key is None:
            self._end_command(protocol, shell_id)
            return output
        return None

    def _send(self, data: bytes) -> None:
        protocol, shell_id = self._protocol, self._shell_id
        assert protocol is not None and shell_id is not None and self._command_id is not None
        for offset in range(0, len(data), STDIN_BLOCK):
            protocol.send_command_input(shell_id, self._command_id,
                                        data[offset:offset + STDIN_BLOCK], end=False)

    def _exchange(self, line: str | None, op: str, timeout: float | None) -> str:
        """Write `line` (None: it went with the session script) and read its answer."""
        if line is not None:
            self._send(line.encode("utf-8"))
        deadline = None if timeout is None else time.monotonic() + timeout
        output, done = self._read_until(ops.SENTINEL, deadline, op, timeout)
        if done:
            self._command_id = None     # the process ended: the next call starts another
        return output

    def _read_until(self, sentinel: str, deadline: float | None, op: str,
                    timeout: float | None, carried: bool = False) -> tuple[str, bool]:
        """The process's lines up to the first starting with `sentinel` (stderr appended when
        there was any), and whether the process ended instead. Lines that came after that
        one are the next read's; with `carried` (a request went with the session script) so
        are its end, its errors and its lines when it ended behind the sentinel line: they
        are that request's answer."""
        protocol, shell_id, command_id = self._protocol, self._shell_id, self._command_id
        assert protocol is not None and shell_id is not None and command_id is not None
        lines, self._early = self._early, []
        stderr, self._early_err = bytearray(self._early_err), b""
        done, self._ended = self._ended, False     # it ended in a read before, behind those
        while not done and not any(line.startswith(sentinel) for line in lines):
            if deadline is not None and time.monotonic() >= deadline:
                self._end_command(protocol, shell_id)
                limit = f"{timeout:g} s" if timeout is not None else "the read timeout"
                raise TransportTimeout(
                    f"no answer to '{op}' within {limit}; the target may still be "
                    "running it", host=self.host.name,
                    hint="raise the step's timeout, or check the target before running again")
            try:
                out, err, _code, done = protocol.get_command_output_raw(shell_id, command_id)
            except WinRMOperationTimeoutError:
                continue  # nothing yet: poll again
            stderr += err
            lines += self._lines.feed(out)
            if done:
                lines.append(self._lines.rest())
        end = next((i + 1 for i, line in enumerate(lines) if line.startswith(sentinel)),
                   len(lines))
        if not done:
            lines, self._early = lines[:end], lines[end:]
        elif carried and any(line.strip() for line in lines[end:]):
            lines, self._early = lines[:end], lines[end:]
            self._early_err, self._ended, done = bytes(stderr), True, False
            stderr = bytearray()
        text = "\n".join(lines)
        errors = strip_clixml(stderr.decode("utf-8", "replace"))
        return (f"{text}\n{errors}" if errors.strip() else text), done

    def _end_command(self, protocol: Protocol, shell_id: str | None) -> None:
        """Terminate this connection's agent process, if any (it may be busy: never reused)."""
        command_id, self._command_id = self._command_id, None
        if command_id is not None and shell_id is not None:
            with contextlib.suppress(Exception):  # gone already is what we want
                protocol.cleanup_command(shell_id, command_id)

    def _drop(self) -> None:
        """After a transport error: the shell is rebuilt by the next call (its agent process
        with it), and this one is closed over the next connection (`_open_once`, or close())
        when it still can be."""
        if self._shell_id is not None:
            self._lost.append(self._shell_id)
        self._shell_id = self._command_id = None
