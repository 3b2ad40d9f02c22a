"""The HTTP(S) side of the lab's WS-Management endpoint: one host on one port.

Each request, in order: the wire faults of the host (dark after a restart or `unreachable`:
the connection is reset, except for the Receive that fetches an answer already made; the
first `refuse_first_connects` connections reset; `http_503`: 503 answers; `stall_s`: Receives
answer late), authentication (`auth`), decryption, the WS-Man service (`service.py`),
encryption, and the `drop_connection_on` fault (half the answer, then the connection is cut).
Requests and bytes are counted per host.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pushinstall.lab.common import HostCounters
from pushinstall.lab.wsman import soap
from pushinstall.lab.wsman.auth import CHALLENGE_HEADERS, ENCRYPTED_TYPE, ConnectionAuth
from pushinstall.lab.wsman.service import WSManService
from pushinstall.lab.wsman.shells import LabHostLike, Reply

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


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


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset, as a machine that is not there (any more) does."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):  # headers and body leave without Nagle's delay
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.site = self.server.site
        self.auth = ConnectionAuth(self.site.username, self.site.password,
                                   self.site.user_file)
        self.site.count(connections=1, open_connections=1)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.site.count(open_connections=-1)

    def handle(self) -> None:
        host = self.site.host
        if host.connection_fault() == "unreachable" or host.refuses_connect():
            _reset(self.connection)
            return
        with contextlib.suppress(ConnectionError, ssl.SSLError, TimeoutError):
            super().handle()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("lab wsman %s: " + format, self.site.host.name, *args)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.site.count(requests=1, bytes_in=len(body))
        host = self.site.host
        encrypted = self.headers.get("Content-Type", "").startswith("multipart/encrypted")
        if not encrypted and self._dark(body):
            return
        if host.take_http_503():
            self._send(503, b"Service Unavailable", "text/plain")
            return
        accepted, www_auth = self.auth.check(self.headers.get("Authorization", ""),
                                             host.connection_fault() == "bad_credentials")
        if not accepted:
            self._send(401, b"", "text/plain", challenge=www_auth)
            return
        if encrypted:
            try:
                body = self.auth.unwrap(body)
            except ValueError as exc:
                self._send(400, str(exc).encode(), "text/plain")
                return
            if self._dark(body):
                return
        elif body and not self.server.tls and not self.site.allow_unencrypted:
            self._send(500, soap.fault(None, soap.UNENCRYPTED_REFUSED,
                                       "The WinRM client cannot process the request: "
                                       "unencrypted traffic is currently disabled."),
                       "application/soap+xml;charset=UTF-8")
            return
        if not body:  # the empty POST that sets up the security context
            self._send(200, b"", "application/soap+xml;charset=UTF-8", www_auth=www_auth)
            return
        if self.site.faults.stall_s > 0 and b"/windows/shell/Receive<" in body:
            time.sleep(self.site.faults.stall_s)
        reply = self.site.service.handle(body)
        self._deliver(reply, encrypted, www_auth)

    def _dark(self, body: bytes) -> bool:
        """Reset the connection when the host is down, unless `body` fetches an answer that
        was made before it went down; True when it was reset."""
        if self.site.host.connection_fault() != "unreachable":
            return False
        if self.site.service.pending_output(body):
            return False
        self.close_connection = True
        _reset(self.connection)
        return True

    def _deliver(self, reply: Reply, encrypted: bool, www_auth: str | None) -> None:
        payload, content_type = reply.body, "application/soap+xml;charset=UTF-8"
        if encrypted:
            payload, content_type = self.auth.wrap(payload), ENCRYPTED_TYPE
        if not reply.drop:
            self._send(reply.status, payload, content_type, www_auth=www_auth)
            return
        # The drop_connection_on fault: the op ran, half its answer leaves, the line is cut.
        self.send_response(reply.status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload[: len(payload) // 2])
        self.wfile.flush()
        self.site.count(bytes_out=len(payload) // 2)
        self.close_connection = True
        _reset(self.connection)

    def _send(self, status: int, payload: bytes, content_type: str,
              challenge: str | None = None, www_auth: str | None = None) -> None:
        self.send_response(status)
        if status == 401:
            for offer in [challenge] if challenge else CHALLENGE_HEADERS:
                self.send_header("WWW-Authenticate", offer)
        elif www_auth:
            self.send_header("WWW-Authenticate", www_auth)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self.site.count(bytes_out=len(payload))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, site: HostSite, tls: ssl.SSLContext | None, port: int = 0) -> None:
        self.site = site
        self.tls = tls
        super().__init__((LOOPBACK, port), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self.tls is not None:
            # The handshake happens in the connection's own thread (first read), so a slow
            # client cannot hold up accept().
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address


class HostServer:
    """One host served over HTTP (message encryption) or HTTPS on a loopback port (`port`,
    or a free one when 0)."""

    def __init__(self, site: HostSite, tls: ssl.SSLContext | None = None, port: int = 0) -> None:
        self.site = site
        self._server = _Server(site, tls, port)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True, name=f"lab-wsman-{site.host.name}-{self.port}")
        self._thread.start()

    def stop(self) -> None:
        """Stop listening; safe to call twice."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
