"""WS-Man endpoints gone wrong, on 127.0.0.1 (issue 13). `DripServer` accepts the connection,
reads the request, sends a status line and then one header line every `interval` seconds,
forever. `DripProxy` passes a real endpoint's traffic through until `dripping` is set, then
hands the client the server's answers one byte every `interval` seconds: a host that opened
fine and stalls mid-call. Every read a client makes gets a byte well within any read
timeout, so only a deadline on the whole exchange ends it."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType


class DripServer:
    """`with DripServer() as drip:` -> `drip.port` drips; `drip.open_connections` counts the
    connections a client still holds."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open = 0
        self.accepted = 0
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def open_connections(self) -> int:
        """Connections a client has not closed (or shut) yet."""
        with self._lock:
            return self._open

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._open += 1
                self.accepted += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(5)
            with contextlib.suppress(OSError):
                conn.recv(65536)   # the request's first bytes: enough to know one came
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            while not self._stop.is_set():
                time.sleep(self.interval)
                conn.sendall(b"X-Drip: 1\r\n")   # a client that gave up makes this fail
        except OSError:
            pass
        finally:
            conn.close()
            with self._lock:
                self._open -= 1

    def __enter__(self) -> DripServer:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()
        self._listener.close()


class DripProxy:
    """`with DripProxy(address, port) as proxy:` -> `proxy.port` forwards to the endpoint;
    `proxy.dripping.set()` turns every answer from then on into a one-byte-a-while drip;
    `proxy.sent` holds what clients sent through it."""

    def __init__(self, address: str, port: int, interval: float = 0.5) -> None:
        self.target = (address, port)
        self.interval = interval
        self.dripping = threading.Event()
        self.sent = bytearray()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, answers: bool) -> None:
        try:
            while not self._stop.is_set():
                data = source.recv(65536)
                if not data:
                    break
                if answers and self.dripping.is_set():
                    for byte in data:
                        sink.sendall(bytes([byte]))
                        time.sleep(self.interval)
                else:
                    if not answers:
                        self.sent += data
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()

    def __enter__(self) -> DripProxy:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()
        self._listener.close()
