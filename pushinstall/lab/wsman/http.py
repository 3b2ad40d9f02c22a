"""The HTTP(S) side of the lab's WS-Management endpoint: one host on one port.

Each request, in order: the wire faults of the host (dark after a restart or `unreachable`:
the connection is reset, except for the Receive that fetches an answer already made; the
first `refuse_first_connects` connections reset; `http_503`: 503 answers; `stall_s`: Receives
answer late), authentication (`auth`), decryption, the WS-Man service (`service.py`),
encryption, and the `drop_connection_on` fault (half the answer, then the connection is cut).
Requests and bytes are counted per host.

Scale: every port of every host in the process is served by ONE asyncio event loop
(`_Wire`, a daemon thread): it accepts, does the TLS handshakes, reads each request until it
is whole (headers, then Content-Length bytes) and writes the answers. A whole request is then
answered by a thread of one process-wide pool (`WORKERS`), because answering may block: a
Receive waits for output up to its OperationTimeout, `stall_s` sleeps, and the host's lock may
be held by an op. Threads are thus as many as the requests being answered at once (at most
`WORKERS`), not one per connection plus one accept loop per port: a thread per connection
and a polling `serve_forever` thread per port made 1,000 hosts in one process ~2,000 threads
and a load average of 400.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import os
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pushinstall.lab.common import HostCounters
from pushinstall.lab.wsman import soap
from pushinstall.lab.wsman.auth import CHALLENGE_HEADERS, ENCRYPTED_TYPE, ConnectionAuth
from pushinstall.lab.wsman.service import WSManService
from pushinstall.lab.wsman.shells import LabHostLike, Reply
from pushinstall.remote.loop import LoopThread

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
WORKERS = 256          # requests answered at once per process (a Receive may wait its timeout)
READ_LIMIT = 1 << 20   # the stream buffer: a pushed chunk's body arrives in few reads
SOAP_TYPE = "application/soap+xml;charset=UTF-8"
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 500: "Internal Server Error",
           501: "Not Implemented", 503: "Service Unavailable"}


@dataclass
class WireFaults:
    """Faults of the endpoint itself, beside the ones the host's lab vars set."""

    stall_s: float = 0.0            # each Receive answers this much later (a hung server)


class HostSite:
    """Everything the request handler needs about one served host."""

    def __init__(self, host: LabHostLike, username: str, password: str,
                 allow_unencrypted: bool, user_file: Path) -> None:
        self.host = host
        self.username = username
        self.password = password
        self.user_file = user_file
        self.allow_unencrypted = allow_unencrypted
        self.service = WSManService(host)
        self.counters = HostCounters()
        self.faults = WireFaults()
        self.lock = threading.Lock()

    def count(self, **amounts: int) -> None:
        """Add to the counters (thread-safe)."""
        with self.lock:
            for name, amount in amounts.items():
                setattr(self.counters, name, getattr(self.counters, name) + amount)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset, as a machine that is not there (any more) does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


T = TypeVar("T")


class _BadRequest(Exception):
    """A request the server cannot read: answered 400, then the connection closes."""


@dataclass
class _Request:
    """One whole HTTP request."""

    method: str
    version: str
    headers: dict[str, str]   # lower-case names, the first value of each
    body: bytes

    def header(self, name: str) -> str:
        """A header's value, "" when absent (`name` in lower case)."""
        return self.headers.get(name, "")

    @property
    def keep_alive(self) -> bool:
        """HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 only when asked."""
        connection = self.header("connection").lower()
        if self.version == "HTTP/1.0":
            return connection == "keep-alive"
        return connection != "close"


@dataclass
class _Answer:
    """What to send back: an HTTP response, or a reset instead of one."""

    status: int = 200
    payload: bytes = b""
    content_type: str = SOAP_TYPE
    headers: list[tuple[str, str]] = field(default_factory=list)
    cut: bool = False      # send the first half, then reset (drop_connection_on)
    reset: bool = False    # reset without a word (the host is dark)
    close: bool = False    # close once sent

    def wire_bytes(self) -> bytes:
        """The status line, headers and body (half of it when `cut`)."""
        lines = [f"HTTP/1.1 {self.status} {REASONS.get(self.status, 'Error')}",
                 "Server: Microsoft-HTTPAPI/2.0", f"Date: {_http_date()}",
                 *(f"{name}: {value}" for name, value in self.headers),
                 f"Content-Type: {self.content_type}", f"Content-Length: {len(self.payload)}"]
        if self.close:
            lines.append("Connection: close")
        body = self.payload[: len(self.payload) // 2] if self.cut else self.payload
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


_DATE: tuple[int, str] = (0, "")


def _http_date() -> str:
    """The Date header, made once a second."""
    global _DATE
    now = int(time.time())
    if _DATE[0] != now:
        _DATE = (now, email.utils.formatdate(now, usegmt=True))
    return _DATE[1]


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    """The next whole request on a connection; None when the client closed it in between."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise
        return None
    except asyncio.LimitOverrunError:
        raise _BadRequest("request headers too long") from None
    lines = head.decode("latin-1").split("\r\n")
    words = lines[0].split()
    if len(words) != 3 or not words[2].startswith("HTTP/"):
        raise _BadRequest(f"bad request line {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers.setdefault(name.strip().lower(), value.strip())
    try:
        length = int(headers.get("content-length") or 0)
    except ValueError:
        raise _BadRequest("bad Content-Length") from None
    if length < 0:
        raise _BadRequest("bad Content-Length")
    body = await reader.readexactly(length) if length else b""
    return _Request(words[0], words[2], headers, body)


class _Conversation:
    """One connection's requests, answered in the pool's threads (one at a time, in order)."""

    def __init__(self, site: HostSite, tls: bool) -> None:
        self.site = site
        self.tls = tls
        self.auth = ConnectionAuth(site.username, site.password, site.user_file)

    def refused(self) -> bool:
        """True when the connection is to be reset at once (host down, refused connects)."""
        host = self.site.host
        return host.connection_fault() == "unreachable" or host.refuses_connect()

    def answer(self, request: _Request) -> _Answer:
        """The answer to one request."""
        if request.method != "POST":
            return self._reply(_Answer(501, b"Unsupported method", "text/plain", close=True))
        body = request.body
        self.site.count(requests=1, bytes_in=len(body))
        host = self.site.host
        encrypted = request.header("content-type").startswith("multipart/encrypted")
        if not encrypted and self._dark(body):
            return _Answer(reset=True)
        if host.take_http_503():
            return self._reply(_Answer(503, b"Service Unavailable", "text/plain"))
        accepted, www_auth = self.auth.check(request.header("authorization"),
                                             host.connection_fault() == "bad_credentials")
        if not accepted:
            offers = [challenge for challenge in [www_auth] if challenge] or CHALLENGE_HEADERS
            return self._reply(_Answer(401, b"", "text/plain",
                                       [("WWW-Authenticate", offer) for offer in offers]))
        granted = [("WWW-Authenticate", www_auth)] if www_auth else []
        if encrypted:
            try:
                body = self.auth.unwrap(body)
            except ValueError as exc:
                return self._reply(_Answer(400, str(exc).encode(), "text/plain"))
            if self._dark(body):
                return _Answer(reset=True)
        elif body and not self.tls and not self.site.allow_unencrypted:
            return self._reply(_Answer(500, soap.fault(
                None, soap.UNENCRYPTED_REFUSED, "The WinRM client cannot process the request: "
                "unencrypted traffic is currently disabled.")))
        if not body:  # the empty POST that sets up the security context
            return self._reply(_Answer(200, b"", headers=granted))
        if self.site.faults.stall_s > 0 and b"/windows/shell/Receive<" in body:
            time.sleep(self.site.faults.stall_s)
        reply: Reply = self.site.service.handle(body)
        payload, content_type = reply.body, SOAP_TYPE
        if encrypted:
            payload, content_type = self.auth.wrap(payload), ENCRYPTED_TYPE
        # The drop_connection_on fault: the op ran, half its answer leaves, the line is cut.
        return self._reply(_Answer(reply.status, payload, content_type, granted, cut=reply.drop))

    def _reply(self, answer: _Answer) -> _Answer:
        self.site.count(bytes_out=len(answer.payload) // 2 if answer.cut
                        else len(answer.payload))
        return answer

    def _dark(self, body: bytes) -> bool:
        """True when the host is down and `body` does not fetch an answer that was made
        before it went down: the connection is to be reset."""
        if self.site.host.connection_fault() != "unreachable":
            return False
        return not self.site.service.pending_output(body)


class _Wire:
    """This process's event loop and answering pool, made on first use (again in a forked
    child: the parent's loop thread did not come along)."""

    _current: _Wire | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.loop = LoopThread("lab-wsman")
        self.pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="lab-wsman")

    @classmethod
    def get(cls) -> _Wire:
        """The process's wire."""
        with cls._lock:
            if cls._current is None:
                cls._current = cls()
            return cls._current

    @classmethod
    def forget(cls) -> None:
        """In a forked child: the parent's loop is not running here."""
        cls._lock = threading.Lock()
        cls._current = None

    async def work(self, call: Callable[..., T], *args: object) -> T:
        """`call(*args)` in a pool thread, awaited on the loop."""
        return await self.loop.loop.run_in_executor(self.pool, call, *args)


os.register_at_fork(after_in_child=_Wire.forget)


class HostServer:
    """One host served over HTTP (message encryption) or HTTPS on a loopback port (`port`,
    or a free one when 0). A port in use is `OSError`, raised here."""

    def __init__(self, site: HostSite, tls: ssl.SSLContext | None = None, port: int = 0) -> None:
        self.site = site
        self.tls = tls
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((LOOPBACK, port))
            listener.listen(128)
        except OSError:
            listener.close()
            raise
        self.port: int = listener.getsockname()[1]
        self._wire = _Wire.get()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.AbstractServer | None = self._wire.loop.run(self._listen(listener))

    async def _listen(self, listener: socket.socket) -> asyncio.AbstractServer:
        return await asyncio.start_server(self._serve, sock=listener, ssl=self.tls,
                                          limit=READ_LIMIT,
                                          ssl_handshake_timeout=30 if self.tls else None)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection, request after request, until either side closes it."""
        sock = writer.get_extra_info("socket")
        with contextlib.suppress(OSError, AttributeError):  # answers leave without Nagle's delay
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # drain() returns when all is handed to the kernel: a cut answer's half is sent before
        # the reset, and a slow reader holds no more than the answer being written
        writer.transport.set_write_buffer_limits(0)
        self.site.count(connections=1, open_connections=1)
        self._writers.add(writer)
        talk = _Conversation(self.site, self.tls is not None)
        try:
            if await self._wire.work(talk.refused):
                _reset(writer)
                return
            while (request := await self._next(reader, writer)) is not None:
                answer = await self._wire.work(talk.answer, request)
                if answer.reset:
                    _reset(writer)
                    return
                writer.write(answer.wire_bytes())
                await writer.drain()
                if answer.cut:
                    _reset(writer)
                    return
                if answer.close or not request.keep_alive:
                    break
        except (ConnectionError, ssl.SSLError, TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            self.site.count(open_connections=-1)
            if not writer.transport.is_closing():
                writer.close()

    async def _next(self, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> _Request | None:
        """The next request; a malformed one is answered 400 and ends the connection."""
        try:
            return await _read_request(reader)
        except _BadRequest as exc:
            log.debug("lab wsman %s: %s", self.site.host.name, exc)
            writer.write(_Answer(400, str(exc).encode(), "text/plain", close=True).wire_bytes())
            await writer.drain()
            return None

    def stop(self) -> None:
        """Stop listening and cut the open connections; safe to call twice."""
        if self._server is not None:
            server, self._server = self._server, None
            self._wire.loop.run(self._close(server))

    async def _close(self, server: asyncio.AbstractServer) -> None:
        server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await server.wait_closed()
