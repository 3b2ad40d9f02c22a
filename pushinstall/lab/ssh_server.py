"""The lab's SSH endpoint: simulated Windows hosts served over real SSH on 127.0.0.1.

Routing: ONE LISTENING PORT PER HOST (free ports on 127.0.0.1). The inventory then names the
host's real address and port and a plain username, exactly as for a Windows OpenSSH server,
and refusing connections is a real closed port. All hosts share one ed25519 host key made at
start; `SSHLabEndpoint.known_hosts` is a known_hosts file with a `[127.0.0.1]:PORT` line per
host, for the inventory's `known_hosts`.

What a host serves:
- password authentication for the username and password it was added with (the username is
  compared case-insensitively, as Windows does), public key authentication when it was given
  authorized keys;
- exec of exactly `powershell -NoProfile -NonInteractive -Command -` as one long-lived agent
  process (`lab.stdin_session`, the stdin protocol of `remote.stdin`): stdin is read as it
  comes; the bootstrap line and its data lines must define the exact `ops.agent_source()`
  (sent, or cached in the host's files), then the loop line (answered
  with the lab's key line), then each request line goes, its sealed fields opened, to
  `LabHost.handle_line`, whose answer line goes to stdout at once; an empty line or EOF ends
  the process with exit 0. Anything else gets the error text cmd.exe or PowerShell would print
  and no answer line;
- SFTP, with Windows OpenSSH's path names (`/C:/Temp/x`). Uploads land in a per-host staging
  directory on the controller and, when the client closes the file, are imported into the
  simulated host's file system at the Windows path; the staged copy is then removed. Only
  writing is served (the transport never reads files back).

Faults (wire level, per host):
- latency: `LabHost.latency` seconds before each request is answered;
- refused connections: while `LabHost.connection_fault()` says `"unreachable"` (the lab var
  `unreachable`, or the dark window after a restart), the port is closed (held by a socket
  that does not listen, so no server asking for a free port is given it), so a connect is
  refused; it reopens on the same port when the fault clears. After an answer that left the
  host dark (`reboot`, `shutdown.exe /r`) its open connections are dropped too, as a
  restarting machine drops them; a host that went dark another way (an in-process transport)
  resets the first connection that meets it, then closes its port;
- bad credentials: `connection_fault() == "bad_credentials"` fails every authentication;
- refused connects: the first `refuse_first_connects` connections are reset as they arrive;
- dropped connection mid-response: for each op named in the lab var `drop_connection_on`, the
  op runs on the host, half of its output is sent, then the connection is aborted.

Counters per host (`counters(name)`): connections, requests (exec channels and SFTP sessions),
bytes in (stdin and SFTP writes) and bytes out (stdout and stderr).

`wire_host(host)` is what a transport factory needs: the inventory host served by this
process's endpoint (one per state dir, started on first use, stopped at exit), returned as a
copy whose connection is plain ssh to 127.0.0.1 with the endpoint's known_hosts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any, Protocol

import asyncssh

from pushinstall import paths
from pushinstall.errors import RemoteOpFailed
from pushinstall.lab.common import HostCounters
from pushinstall.lab.endpoint_host import EndpointHost
from pushinstall.lab.pools import EndpointPool, Serving
from pushinstall.lab.stdin_session import StdinSession
from pushinstall.model import Host
from pushinstall.remote.loop import LoopThread
from pushinstall.remote.stdin import POWERSHELL_COMMAND
from pushinstall.secret import Secret

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
DARK_POLL_S = 0.1
LAB_USERNAME = "pushinstall"
LAB_PASSWORD = "lab-password"  # the loopback lab's account when the inventory names none
OP_THREADS = 256  # ops may sleep (simulated installers); many hosts must not queue behind one
NOT_POWERSHELL = (
    "'{command}' is not recognized as an internal or external command,\r\n"
    "operable program or batch file.\r\n"
)


class LabHostLike(EndpointHost, Protocol):
    """What the SSH endpoint needs from a `pushinstall.lab.LabHost`."""

    def import_file(self, path: str, data: bytes) -> None: ...


@dataclass
class _Served:
    lab_host: LabHostLike
    username: str
    password: str
    authorized_keys: list[asyncssh.SSHKey]
    staging: Path
    port: int = 0
    acceptor: asyncssh.SSHAcceptor | None = None
    connections: set[asyncssh.SSHServerConnection] = field(default_factory=set)
    counters: HostCounters = field(default_factory=HostCounters)
    waking: asyncio.Task[None] | None = None
    reserved: socket.socket | None = None   # the port, held while the host is dark


def _reserve(port: int) -> socket.socket | None:
    """A socket bound to `port` that does not listen: a connect to it is refused, as to a dark
    host, and no server asking for a free port is given it meanwhile (a dark port left free was
    given to another test process's server, whose answer made the dark host reachable; one
    binding this very port with SO_REUSEADDR still could). None when it cannot be bound."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, port))
    except OSError:
        sock.close()
        return None
    return sock


def _release(served: _Served) -> None:
    if served.reserved is not None:
        served.reserved.close()
        served.reserved = None


class SSHLabEndpoint(Serving):
    """SSH endpoints for lab hosts, one port each, served from a background event loop.

    Use as a context manager, or call `start()` and `stop()`.
    """

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.known_hosts = work_dir / "known_hosts"
        self._hosts: dict[str, _Served] = {}
        self._loop: LoopThread | None = None
        self._host_key: asyncssh.SSHKey | None = None
        self._executor: ThreadPoolExecutor | None = None

    def start(self) -> None:
        """Make the host key, write an empty known_hosts file, start the event loop."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.known_hosts.write_text("", encoding="utf-8")
        self._executor = ThreadPoolExecutor(OP_THREADS, thread_name_prefix="lab-ssh-op")
        self._loop = LoopThread("lab-ssh")

    def stop(self) -> None:
        """Close every listener and connection, stop the loop; safe to call twice."""
        if self._loop is None:
            return
        self._loop.run(self._stop_all())
        self._loop.stop()
        self._loop = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def add_host(
        self,
        lab_host: LabHostLike,
        *,
        username: str,
        password: str,
        authorized_keys: Iterable[asyncssh.SSHKey] = (),
        port: int = 0,
    ) -> int:
        """Serve `lab_host` on a new port of 127.0.0.1 (`port`, or a free one when 0); returns
        the port. A port in use is `OSError`."""
        assert self._loop is not None, "start() the endpoint first"
        if lab_host.name in self._hosts:
            raise ValueError(f"host {lab_host.name!r} is already served")
        served = _Served(lab_host, username, password, list(authorized_keys),
                         self.work_dir / "sftp" / lab_host.name, port)
        self._loop.run(self._listen(served))
        self._hosts[lab_host.name] = served
        assert self._host_key is not None
        key = self._host_key.export_public_key().decode("ascii").strip()
        with self.known_hosts.open("a", encoding="utf-8") as handle:
            handle.write(f"[{LOOPBACK}]:{served.port} {key}\n")
        if lab_host.connection_fault() == "unreachable":
            self._loop.run(self._go_dark(served))
        return served.port

    def serves(self, name: str) -> bool:
        """True when host `name` was added."""
        return name in self._hosts

    def address(self, name: str) -> tuple[str, int]:
        """`(address, port)` where host `name` is served."""
        return LOOPBACK, self._hosts[name].port

    def counters(self, name: str) -> HostCounters:
        """The live traffic counters of host `name`."""
        return self._hosts[name].counters

    # ---- listening and going dark ---------------------------------------------------------

    async def _listen(self, served: _Served) -> None:
        assert self._host_key is not None
        served.acceptor = await asyncssh.listen(
            LOOPBACK, served.port, reuse_address=True,
            server_factory=lambda: _Server(self, served),
            server_host_keys=[self._host_key],
            process_factory=lambda process: self._session(served, process),
            sftp_factory=lambda chan: _LabSFTP(chan, served),
            allow_scp=False, encoding=None, config=None,
        )
        served.port = served.acceptor.get_port()

    async def _go_dark(self, served: _Served) -> None:
        """Close the port and drop every connection until the host's fault clears."""
        if served.acceptor is not None:
            served.acceptor.close()
            served.acceptor = None
            served.reserved = _reserve(served.port)
        for conn in list(served.connections):
            conn.abort()
        if served.waking is None:
            served.waking = asyncio.get_running_loop().create_task(self._wake(served))

    async def _wake(self, served: _Served) -> None:
        while served.lab_host.connection_fault() == "unreachable":
            await asyncio.sleep(DARK_POLL_S)
        served.waking = None
        _release(served)
        try:
            await self._listen(served)
        except OSError as exc:  # the port was taken meanwhile: the host stays unreachable
            log.warning("lab host %s cannot listen again on port %d: %s",
                        served.lab_host.name, served.port, exc)

    async def _stop_all(self) -> None:
        for served in self._hosts.values():
            if served.waking is not None:
                served.waking.cancel()
            if served.acceptor is not None:
                served.acceptor.close()
            _release(served)
            for conn in list(served.connections):
                conn.abort()
        current = asyncio.current_task()
        pending = [task for task in asyncio.all_tasks() if task is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    # ---- exec ------------------------------------------------------------------------------

    async def _session(self, served: _Served, process: asyncssh.SSHServerProcess[bytes]) -> None:
        counters = served.counters
        if served.lab_host.connection_fault() == "unreachable":  # restarted meanwhile
            await self._go_dark(served)
            return
        command = process.command or ""
        if command.strip().lower() != POWERSHELL_COMMAND.lower():
            counters.requests += 1
            message = NOT_POWERSHELL.format(command=command.split(" ")[0]).encode()
            counters.bytes_out += len(message)
            process.stderr.write(message)
            process.exit(1)
            return
        # one agent process: stdin as it comes, one answer line per request line
        session = StdinSession(served.lab_host.handle_line, served.lab_host.define_agent)
        loop = asyncio.get_running_loop()
        while not session.ended:
            data = await process.stdin.read(256 * 1024)
            if not data:
                break
            counters.bytes_in += len(data)
            # handle_line may sleep (simulated installers): keep the loop serving other hosts
            replies = await loop.run_in_executor(self._executor, list, session.feed(data))
            for op, output in replies:
                if op:
                    counters.requests += 1
                    if served.lab_host.latency > 0:
                        await asyncio.sleep(served.lab_host.latency)
                encoded = output.encode("utf-8")
                if session.failed:
                    counters.bytes_out += len(encoded)
                    process.stderr.write(encoded)
                    continue
                if op and op in served.lab_host.lab.drop_connection_on:
                    process.stdout.write(encoded[: len(encoded) // 2])
                    counters.bytes_out += len(encoded) // 2
                    await process.stdout.drain()
                    process.channel.get_connection().abort()
                    return
                counters.bytes_out += len(encoded)
                process.stdout.write(encoded)
                if op and served.lab_host.connection_fault() == "unreachable":
                    # a reboot, shutdown /r...: answer, end the process, go dark
                    process.exit(0)
                    await process.channel.wait_closed()
                    await self._go_dark(served)
                    return
        process.exit(1 if session.failed else 0)


class _Server(asyncssh.SSHServer):
    """Authentication and connection bookkeeping for one connection to one host."""

    def __init__(self, endpoint: SSHLabEndpoint, served: _Served) -> None:
        self._endpoint = endpoint
        self._served = served
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._served.connections.add(conn)
        self._served.counters.connections += 1
        if self._served.lab_host.connection_fault() == "unreachable":
            # dark since another way in restarted it: this connection, and later ones, fail
            conn.abort()
            asyncio.get_running_loop().create_task(self._endpoint._go_dark(self._served))
        elif self._served.lab_host.refuses_connect():
            conn.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._served.connections.discard(self._conn)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        if self._served.lab_host.connection_fault() == "bad_credentials":
            return False
        return (username.lower() == self._served.username.lower()
                and password == self._served.password)

    def public_key_auth_supported(self) -> bool:
        return bool(self._served.authorized_keys)

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        if self._served.lab_host.connection_fault() == "bad_credentials":
            return False
        return username.lower() == self._served.username.lower() and any(
            key.public_data == known.public_data for known in self._served.authorized_keys)


class _LabSFTP(asyncssh.SFTPServer):
    """SFTP writes staged on the controller, imported into the lab host when closed."""

    def __init__(self, chan: asyncssh.SSHServerChannel[bytes], served: _Served) -> None:
        served.staging.mkdir(parents=True, exist_ok=True)
        super().__init__(chan, chroot=str(served.staging).encode())
        self._served = served
        served.counters.requests += 1
        self._written: dict[int, tuple[str, Path]] = {}

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> Any:
        if not pflags & asyncssh.FXF_WRITE:
            raise asyncssh.SFTPPermissionDenied("the lab serves SFTP uploads only")
        windows = _windows_path(path)
        staged = self._served.staging / windows.replace(":", "").replace("\\", "/")
        staged.parent.mkdir(parents=True, exist_ok=True)
        handle = super().open(self._staged_name(staged), pflags, attrs)
        self._written[id(handle)] = (windows, staged)
        return handle

    def _staged_name(self, staged: Path) -> bytes:
        return b"/" + staged.relative_to(self._served.staging).as_posix().encode("utf-8")

    def write(self, file_obj: object, offset: int, data: bytes) -> Any:
        self._served.counters.bytes_in += len(data)
        return super().write(file_obj, offset, data)

    async def close(self, file_obj: object) -> None:  # type: ignore[override]
        super().close(file_obj)
        windows, staged = self._written.pop(id(file_obj), ("", None))
        if staged is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(
                None, self._served.lab_host.import_file, windows, staged.read_bytes())
        except RemoteOpFailed as exc:
            raise _SFTP_ERRORS.get(exc.error_type, asyncssh.SFTPFailure)(exc.message) from None
        except OSError as exc:
            raise asyncssh.SFTPFailure(f"cannot store {windows}: {exc}") from None
        finally:
            with contextlib.suppress(OSError):
                staged.unlink()


_SFTP_ERRORS: dict[str, Callable[[str], asyncssh.SFTPError]] = {
    "DiskFull": asyncssh.SFTPNoSpaceOnFilesystem,
    "AccessDenied": asyncssh.SFTPPermissionDenied,
    "NotFound": asyncssh.SFTPNoSuchPath,
}


def _windows_path(path: bytes) -> str:
    """`/C:/Temp/x` (Windows OpenSSH's SFTP name) -> `C:\\Temp\\x`; anything else is refused."""
    text = path.decode("utf-8").lstrip("/")
    windows = PureWindowsPath(text)
    if not windows.drive or not windows.root or ".." in windows.parts:
        raise asyncssh.SFTPNoSuchPath(f"not a drive path: {path.decode('utf-8', 'replace')}")
    return str(windows)


POOL = EndpointPool("pushinstall-lab-ssh-", SSHLabEndpoint)


def wire_host(host: Host, state_dir: Path | None = None) -> Host:
    """A copy of lab host `host` whose connection reaches it over SSH on 127.0.0.1.

    The simulated machine is `pushinstall.lab.lab_host(host.name, host.vars["lab"], state_dir)`;
    it accepts the inventory's username and password (else LAB_USERNAME / LAB_PASSWORD).
    """
    from pushinstall.lab import lab_host

    directory = (state_dir or paths.state_dir()).resolve()
    model = lab_host(host.name, host.vars.get("lab"), directory)
    connection = host.connection
    username = connection.username or LAB_USERNAME
    password = connection.password or Secret(LAB_PASSWORD)
    with POOL.lock:
        endpoint = POOL.get(directory)
        if not endpoint.serves(host.name):
            endpoint.add_host(model, username=username, password=password.reveal())
        _, port = endpoint.address(host.name)
    wired = dataclasses.replace(
        connection, transport="ssh", address=LOOPBACK, port=port, username=username,
        password=password, known_hosts=str(endpoint.known_hosts), host_key_checking=True)
    return dataclasses.replace(host, connection=wired)

