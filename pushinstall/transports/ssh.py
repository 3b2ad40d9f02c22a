"""The ssh transport: asyncssh to Windows OpenSSH, PowerShell fed on stdin, SFTP for files.

One agent process per connection: the first `call` opens one exec channel running
`powershell -NoProfile -NonInteractive -Command -` and writes `remote.stdin.session_script` on
its stdin: the bootstrap line, its two data lines (the agent's hash; the packed agent, or an
empty line when the target is known to hold that copy), then the loop line. Windows PowerShell
reads `-Command -` input statement by statement, like a prompt, and a multi-line statement (a
function with blank lines in it, a brace on its own line) breaks there; so the bootstrap is ONE
line and the agent is data to it: gzipped, base64, checked against its hash, unpacked with .NET
classes and dot-sourced into the session via `[ScriptBlock]::Create`, from the target's cache
when the copy there still hashes right (remote/bootstrap.py; the same as over PSRP). A target
whose copy is gone or differs says so and that process ends; a new one gets the agent. The
agent's loop answers with its session key line, then
reads each request line as data and writes one answer line; secret fields are sealed to the
key. A timeout or a lost connection ends the process (nothing is re-sent); the next call
starts a new one, reconnecting first when the connection is gone.

asyncssh is asynchronous and the engine calls transports from worker threads, so each transport
owns a private event loop in a background thread (`remote.loop.LoopThread`).

Timeouts (from `inventory.Connection`):
- `connect_timeout` bounds TCP connect, key exchange and authentication;
- `read_timeout` bounds silence from the server: keepalives go out every quarter of it and the
  connection is declared dead when they stay unanswered, so a long installer that prints nothing
  is never cut while the server is alive (poll, don't block);
- the `timeout` of `call` (the step's deadline) bounds one whole call;
- `operation_timeout` is a WS-Man notion with no SSH counterpart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Coroutine
from pathlib import Path, PureWindowsPath
from typing import Any, TypeVar

import asyncssh

from pushinstall.errors import (
    AuthenticationFailed,
    HostError,
    RemoteOpFailed,
    TransportError,
    TransportTimeout,
    Unreachable,
)
from pushinstall.model import Host
from pushinstall.remote import bootstrap, modules, ops, sealing
from pushinstall.remote.loop import LoopThread
from pushinstall.remote.stdin import POWERSHELL_COMMAND, Lines, request_line, session_script
from pushinstall.secret import Redactor

log = logging.getLogger(__name__)

DEFAULT_PORT = 22
SFTP_BLOCK_SIZE = 256 * 1024
T = TypeVar("T")


def sftp_path(windows_path: str) -> str:
    """The SFTP name Windows OpenSSH gives a drive path: `C:\\Temp\\x` -> `/C:/Temp/x`."""
    path = PureWindowsPath(windows_path)
    if not path.drive or len(path.drive) != 2 or not path.root:
        raise ValueError(f"not an absolute drive path: {windows_path!r}")
    return "/" + path.as_posix()


class SSHTransport:
    """`transports.base.Transport` over SSH to Windows OpenSSH (see the module docstring).

    Password authentication when the inventory gives a password, else the user's SSH keys and
    agent. Host keys are checked against `connection.known_hosts` (the user's default file when
    unset) unless `connection.host_key_checking` is false. A call after a lost connection
    reconnects first; nothing is ever re-sent by the transport itself.
    """

    def __init__(self, host: Host, redactor: Redactor | None = None) -> None:
        self.host = host
        self.connection = host.connection
        self.address = self.connection.address or host.name
        self.port = self.connection.port or DEFAULT_PORT
        self.redactor = redactor or Redactor()
        if self.connection.password is not None:
            self.redactor.add(self.connection.password)
        self._loop: LoopThread | None = None
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._agent_source: str | None = None
        self._channel_refused = ""
        self._process: asyncssh.SSHClientProcess[bytes] | None = None
        self._stderr = bytearray()
        self._stderr_task: asyncio.Task[None] | None = None
        self._key: Any = None
        self._seen = bootstrap.Seen()      # which agent the target held at the last contact
        self._modules: set[str] = set()     # the agent modules this process loaded
        self._where = f"{self.address}:{self.port}"

    # ---- Transport ------------------------------------------------------------------------

    def open(self) -> None:
        """Connect and authenticate. The agent is sent by the first call (one process per
        connection)."""
        if self._agent_source is None:
            self._agent_source = ops.agent_source()
        if self._loop is None:
            self._loop = LoopThread(f"ssh-{self.host.name}")
        if self._conn is None:
            self._conn = self._loop.run(self._guard(self._connect(), "connect"))

    def call(self, request: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Send `request` to this connection's agent process; return its decoded answer."""
        op = str(request.get("op", "?"))
        started: bool | str | None = True
        for _ in range(2):
            conn = self._connected()
            assert self._loop is not None
            if self._process is not None and not self._process.is_closing():
                break
            started = self._loop.run(self._guard(self._start(conn), "connect"))
            if started is not None:
                break
            # No channel opened, so nothing was sent: connecting again and sending once is
            # not a re-send.
            self._conn = self._sftp = None
        if started is None:
            raise Unreachable(
                f"{self.address}:{self.port} opened no session twice: {self._channel_refused}",
                host=self.host.name, hint="check sshd on the host (MaxSessions, its event log)")
        if isinstance(started, str):        # the process ended without its key line
            return ops.decode_answer(started, host=self.host.name, redactor=self.redactor)
        request, unwrap = modules.with_modules(request, self._modules)
        line = request_line(ops.encode_request(sealing.seal(request, self._key), pack=True))
        assert self._loop is not None
        try:
            output = self._loop.run(self._guard(self._exchange(line, op, timeout), op))
        except HostError:
            self._end_process()
            raise
        return unwrap(ops.decode_answer(output, host=self.host.name, redactor=self.redactor))

    def _connected(self) -> asyncssh.SSHClientConnection:
        if self._conn is not None and self._conn.is_closed():
            self._conn = self._sftp = None
        if self._conn is None:
            self.open()
        assert self._conn is not None
        return self._conn

    def put_file(self, local: Path, remote: str, sha256: str) -> dict[str, Any]:
        """Push `local` to `remote`: `file_begin`, SFTP into its temp file, `file_end`.

        The target keeps the docs/ops.md contract: free space checked and parents made by
        `file_begin`, sha256 checked and the file moved into place by `file_end`.
        """
        try:
            sftp_path(remote)
        except ValueError as exc:
            raise RemoteOpFailed(str(exc), host=self.host.name, hint="put_file needs a path "
                                 "like C:\\Temp\\x.exe", error_type="InvalidArgument") from None
        size = local.stat().st_size
        begin = ops.result_of(
            self.call(ops.request("file_begin", destination=remote, size=size, sha256=sha256)),
            host=self.host.name,
        )
        temp_path = str(begin["temp_path"])
        started = time.monotonic()
        assert self._loop is not None
        try:
            self._loop.run(self._guard(self._sftp_put(local, temp_path), "sftp put"))
        except HostError:
            self._remove_quietly(temp_path)
            raise
        elapsed = max(time.monotonic() - started, 1e-6)
        log.debug("%s: pushed %s (%d bytes) over SFTP in %.2f s, %.1f MB/s", self.host.name,
                  remote, size, elapsed, size / elapsed / 1e6)
        end = self.call(
            ops.request("file_end", temp_path=temp_path, destination=remote, sha256=sha256)
        )
        result: dict[str, Any] = ops.result_of(end, host=self.host.name)
        return result

    def _remove_quietly(self, path: str) -> None:
        try:
            self.call(ops.request("remove_file", path=path))
        except HostError as exc:
            log.debug("%s: could not remove %s after a failed push: %s", self.host.name, path, exc)

    def _end_process(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.close()

    def close(self) -> None:
        """Close the SFTP session, the connection and the loop; safe to call twice."""
        self._end_process()
        if self._loop is not None:
            if self._conn is not None:
                conn, self._conn, self._sftp = self._conn, None, None
                # A connection that is already gone is what close wants.
                with contextlib.suppress(OSError, asyncssh.Error, asyncio.TimeoutError):
                    self._loop.run(self._disconnect(conn))
            self._loop.stop()
            self._loop = None

    # ---- on the loop ----------------------------------------------------------------------

    async def _connect(self) -> asyncssh.SSHClientConnection:
        conn = self.connection
        read_timeout = max(conn.read_timeout, 1.0)
        options: dict[str, Any] = {
            "username": conn.username,
            "known_hosts": (conn.known_hosts or ()) if conn.host_key_checking else None,
            "connect_timeout": conn.connect_timeout,
            "login_timeout": conn.connect_timeout,
            "keepalive_interval": read_timeout / 4,
            "keepalive_count_max": 3,
            "config": None,
        }
        if conn.password is not None:
            options.update(password=conn.password.reveal(), client_keys=None, agent_path=None,
                           preferred_auth=["password", "keyboard-interactive"])
        return await asyncssh.connect(self.address, self.port, **options)

    async def _start(self, conn: asyncssh.SSHClientConnection) -> bool | str | None:
        """Start the agent process and read its key: True; the output when it ended first;
        None when no channel could be opened. The agent goes along unless the target is known
        to hold it; a target whose copy is gone or differs says so and ends that process, and
        a new one gets the agent."""
        agent = self._agent_source
        assert agent is not None
        sha256 = bootstrap.agent_hash(agent)
        with_agent = not self._seen.holds(self._where, sha256)
        self._modules = set()
        started = await self._start_process(conn, session_script(with_agent, agent))
        if isinstance(started, str) and bootstrap.missing(started) and not with_agent:
            started = await self._start_process(conn, session_script(True, agent))
        if started is not None:
            self._seen.remember(self._where, sha256 if started is True else None)
        return started

    async def _start_process(self, conn: asyncssh.SSHClientConnection,
                             script: str) -> bool | str | None:
        """One agent process fed `script` (see `_start`)."""
        try:
            process = await conn.create_process(POWERSHELL_COMMAND, encoding=None)
        except asyncssh.ChannelOpenError as exc:
            # Nothing was sent yet. Most often the server just dropped the connection (a
            # restart) and the client has not noticed it: the caller reconnects once.
            self._channel_refused = exc.reason
            conn.close()
            return None
        self._process, self._stderr = process, bytearray()
        # kept: the loop holds tasks only weakly
        self._stderr_task = asyncio.get_running_loop().create_task(self._drain_stderr(process))
        process.stdin.write(script.encode("utf-8"))
        try:
            output, ended = await asyncio.wait_for(
                self._read_until(process, sealing.KEY_SENTINEL),
                max(self.connection.read_timeout, 1.0))
        except asyncio.TimeoutError:
            self._end_process()
            raise TransportTimeout(f"the agent on {self.address}:{self.port} sent no key line",
                                   host=self.host.name) from None
        self._key = None if ended else sealing.public_key_of(output)
        if self._key is None:
            self._end_process()
            return output
        return True

    async def _drain_stderr(self, process: asyncssh.SSHClientProcess[bytes]) -> None:
        """Keep reading stderr, so a chatty error stream never stalls the channel."""
        with contextlib.suppress(Exception):
            while chunk := await process.stderr.read(65536):
                self._stderr += chunk

    async def _read_until(self, process: asyncssh.SSHClientProcess[bytes],
                          sentinel: str) -> tuple[str, bool]:
        """The lines up to the first starting with `sentinel`, and whether the process ended
        first (then with its stderr appended)."""
        lines: list[str] = []
        reader = Lines()
        while True:
            chunk = await process.stdout.readline()
            if not chunk:
                break
            lines += reader.feed(chunk)
            if lines and lines[-1].startswith(sentinel):
                return "\n".join(lines), False
        await asyncio.sleep(0)          # let the stderr reader take what is left
        lines.append(reader.rest())
        err = _text(bytes(self._stderr))
        text = "\n".join(lines)
        return (f"{text}\n{err}" if err.strip() else text), True

    async def _exchange(self, line: str, op: str, timeout: float | None) -> str:
        """The output up to the answer line for one request line."""
        process = self._process
        assert process is not None
        process.stdin.write(line.encode("utf-8"))
        try:
            output, ended = await asyncio.wait_for(self._read_until(process, ops.SENTINEL),
                                                   timeout)
        except asyncio.TimeoutError:
            self._end_process()
            raise TransportTimeout(
                f"no answer to '{op}' within {timeout:g} s; the target may still be running it",
                host=self.host.name,
                hint="raise the step's timeout, or check the target before running again",
            ) from None
        if ended:
            self._process = None
            conn = self._conn
            # silence then EOF: the host went away (a restart closes the process before the
            # connection), so the request may or may not have run; with output, it is quoted
            if not output.strip() or (conn is not None and conn.is_closed()):
                raise asyncssh.ConnectionLost("the agent process ended before the answer")
        return output

    async def _sftp_put(self, local: Path, temp_path: str) -> None:
        assert self._conn is not None
        if self._sftp is None:
            self._sftp = await self._conn.start_sftp_client()
        await self._sftp.put(str(local), sftp_path(temp_path), block_size=SFTP_BLOCK_SIZE)

    @staticmethod
    async def _disconnect(conn: asyncssh.SSHClientConnection) -> None:
        conn.close()
        await asyncio.wait_for(conn.wait_closed(), 5)

    async def _guard(self, coro: Coroutine[Any, Any, T], doing: str) -> T:
        """Await `coro`, mapping library exceptions into errors.py once, here."""
        try:
            return await coro
        except HostError:
            raise
        except Exception as exc:  # mapped below; anything unknown stays a TransportError
            raise self._map_error(exc, doing) from exc

    def _map_error(self, exc: Exception, doing: str) -> HostError:
        name, where = self.host.name, f"{self.address}:{self.port}"
        text = self.redactor.redact(str(exc) or type(exc).__name__)
        if isinstance(exc, asyncssh.PermissionDenied):
            user = self.connection.username or "(default user)"
            return AuthenticationFailed(
                f"SSH server at {where} refused the credentials of {user}",
                host=name,
                hint="check the username and password in the inventory (a domain account is "
                     "DOMAIN\\user or user@domain) and that sshd_config allows this account",
            )
        if isinstance(exc, asyncssh.HostKeyNotVerifiable):
            known = self.connection.known_hosts or "~/.ssh/known_hosts"
            return TransportError(
                f"host key of {where} is not trusted: {text}",
                host=name,
                hint=f"add it to {known} (ssh-keyscan -p {self.port} {self.address}) or set "
                     "host_key_checking: false for this host in the inventory",
            )
        if isinstance(exc, socket.gaierror):
            return Unreachable(f"cannot resolve {self.address}: {text}", host=name,
                               hint="check the host's name or set its address in the inventory")
        if isinstance(exc, ConnectionRefusedError):
            return Unreachable(
                f"connection refused by {where}",
                host=name,
                hint="is the OpenSSH Server service (sshd) running, and the port open in the "
                     "Windows firewall? A host that is rebooting refuses for a while",
            )
        if isinstance(exc, asyncio.TimeoutError) or "keepalive" in text:
            return TransportTimeout(
                f"{where} stopped answering during {doing}: {text}",
                host=name,
                hint="check the network path and the host; connect_timeout and read_timeout "
                     "are set per host in the inventory",
            )
        if isinstance(exc, asyncssh.ConnectionLost | ConnectionError | EOFError):
            if doing in ("connect", "sftp put"):
                return Unreachable(f"connection to {where} lost during {doing}: {text}", host=name,
                                   hint="the host or the network dropped the connection")
            return Unreachable(
                f"connection to {where} lost while '{doing}' was in flight: it may or may not "
                "have run on the target",
                host=name,
                hint="check the host's state before running again; a non-idempotent op is "
                     "never re-sent automatically",
            )
        if isinstance(exc, asyncssh.SFTPError):
            return RemoteOpFailed(f"SFTP failed: {text}", host=name, error_type=_sftp_type(exc))
        return TransportError(f"SSH to {where} failed during {doing}: {text}", host=name,
                              hint="see the message; the connection is reopened on the next call")


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data


def _sftp_type(exc: asyncssh.SFTPError) -> str:
    if isinstance(exc, asyncssh.SFTPNoSpaceOnFilesystem | asyncssh.SFTPQuotaExceeded):
        return "DiskFull"
    if isinstance(exc, asyncssh.SFTPPermissionDenied):
        return "AccessDenied"
    if isinstance(exc, asyncssh.SFTPNoSuchFile | asyncssh.SFTPNoSuchPath):
        return "NotFound"
    return "Exception"

