"""The winrm transport: pywinrm's `Protocol`, one WinRS cmd shell per host per run.

Each `call` runs `powershell -NoProfile -NonInteractive -Command -` in the shell and writes the
script on its stdin, because a cmd.exe command line stops at 8191 characters while the agent
alone is far longer. The stdin script is the same as the ssh transport's
(`remote.stdin.stdin_script`): the agent as one gzipped line, then the invocation line.
Stdin goes in Sends of at most `STDIN_BLOCK` bytes, below the server's MaxEnvelopeSize.

`put_file` (wsman_common.WSManTransportBase) runs the push receiver as a second command in
the shell and writes the file's raw bytes on its stdin (remote/receiver.py, docs/ops.md).

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
from pushinstall.remote import ops, receiver
from pushinstall.remote.stdin import stdin_script
from pushinstall.secret import Redactor
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

    def send(self, data: bytes, end: bool) -> None:
        self.protocol.send_command_input(self.shell_id, self.command_id, data, end=end)

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

    # ---- Transport ------------------------------------------------------------------------

    def open(self) -> None:
        """Authenticate and open the shell: one attempt (the engine retries a transient
        failure, with backoff)."""
        if self._shell_id is None:
            self._open_once()

    def call(self, request: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Run `request` in a fresh PowerShell process; return its decoded answer."""
        op = str(request.get("op", "?"))
        if self._shell_id is None:
            self.open()
        script = stdin_script(request, self._agent)
        output = self._guard(lambda: self._run(script, op, timeout), op, in_flight=True)
        return ops.decode_answer(output, host=self.host.name, redactor=self.redactor)

    def close(self) -> None:
        """Close the shell and the HTTP session; safe to call twice."""
        protocol, shell_id, self._protocol, self._shell_id = (self._protocol, self._shell_id,
                                                              None, None)
        if protocol is not None:
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
                              lambda: _ReceiverCommand(protocol, shell_id))

    def _session(self) -> requests.Session | None:
        return self._protocol.transport.session if self._protocol is not None else None

    def _new_protocol(self) -> Protocol:
        conn, end = self.host.connection, self.endpoint
        verify = end.verify
        # pywinrm takes float timeouts and no CA path (None), though its hints say otherwise
        options: dict[str, Any] = {"transport": _AUTH[conn.auth],
                                   "ca_trust_path": verify if isinstance(verify, str) else None,
                                   "read_timeout_sec": end.read_timeout}
        return Protocol(
            end.url, username=conn.username,
            password=conn.password.reveal() if conn.password is not None else None,
            server_cert_validation="validate" if verify is not False else "ignore",
            cert_pem=conn.certificate_pem, cert_key_pem=conn.certificate_key_pem,
            operation_timeout_sec=end.poll_s,
            message_encryption="never" if conn.auth in ("basic", "certificate") else "auto",
            proxy=None, **options)

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

    def _run(self, script: str, op: str, timeout: float | None) -> str:
        protocol, shell_id = self._protocol, self._shell_id
        assert protocol is not None and shell_id is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        command_id = protocol.run_command(
            shell_id, "powershell", ["-NoProfile", "-NonInteractive", "-Command", "-"])
        data = script.encode("utf-8")
        blocks = range(0, len(data), STDIN_BLOCK)
        for offset in blocks:
            protocol.send_command_input(shell_id, command_id, data[offset:offset + STDIN_BLOCK],
                                        end=offset + STDIN_BLOCK >= len(data))
        stdout, stderr = bytearray(), bytearray()
        done = False
        while not done:
            if deadline is not None and time.monotonic() >= deadline:
                with contextlib.suppress(Exception):
                    protocol.cleanup_command(shell_id, command_id)
                raise TransportTimeout(
                    f"no answer to '{op}' within {timeout:g} s; the target may still be "
                    "running it", host=self.host.name,
                    hint="raise the step's timeout, or check the target before running again")
            try:
                out, err, _code, done = protocol.get_command_output_raw(shell_id, command_id)
            except WinRMOperationTimeoutError:
                continue  # nothing yet: poll again
            stdout += out
            stderr += err
        with contextlib.suppress(Exception):  # the process has ended; this only frees it
            protocol.cleanup_command(shell_id, command_id)
        text = stdout.decode("utf-8", "replace")
        errors = strip_clixml(stderr.decode("utf-8", "replace"))
        return f"{text}\n{errors}" if errors.strip() else text

    def _drop(self) -> None:
        """After a transport error: the shell is rebuilt by the next call, and this one is
        closed over the next connection (`_open_once`, or close()) when it still can be."""
        if self._shell_id is not None:
            self._lost.append(self._shell_id)
        self._shell_id = None
