"""`-vv` and `-vvv`: a transport wrapper that writes what goes over the wire to stderr.

`-vv` (level 2): one line per op: host, op name, request and answer sizes, time, and errors
(a retried open or call shows as one line per try), and per push its size, time and MB/s,
with the HTTP requests and bytes it sent where the transport counts them (psrp, winrm).
`-vvv` (level 3): also the request and the answer as JSON. Every line passes through the
run's `Redactor`, which knows every secret the run resolved, so no secret is printed even at
-vvv.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from pushinstall.secret import Redactor
from pushinstall.transports.base import Transport
from pushinstall.transports.push import PushStats


class TracingTransport:
    """Wraps `inner`; same protocol, same errors, plus trace lines."""

    def __init__(self, inner: Transport, host: str, level: int, redactor: Redactor,
                 stream: TextIO | None = None) -> None:
        self.inner, self.host, self.level, self.redactor = inner, host, level, redactor
        self.stream = stream or sys.stderr

    def _line(self, text: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.stream.write(self.redactor.redact(f"{stamp} {self.host}  {text}") + "\n")
        self.stream.flush()

    def open(self) -> None:
        """Open the inner transport, tracing the attempt."""
        started = time.monotonic()
        try:
            self.inner.open()
        except Exception as error:
            self._line(f"open failed after {time.monotonic() - started:.2f}s: {error}")
            raise
        self._line(f"open {type(self.inner).__name__} {time.monotonic() - started:.2f}s")

    def call(self, request: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Send through the inner transport, tracing the op (and at -vvv its JSON)."""
        sent = json.dumps(request, default=str)
        started = time.monotonic()
        try:
            answer = self.inner.call(request, timeout=timeout)
        except Exception as error:
            self._line(f"op {request.get('op')} failed after "
                       f"{time.monotonic() - started:.2f}s: {error}")
            raise
        received = json.dumps(answer, default=str)
        self._line(f"op {request.get('op')}  {len(sent)} B -> {len(received)} B  "
                   f"{time.monotonic() - started:.2f}s  ok={answer.get('ok')}")
        if self.level >= 3:
            self._line(f"  request {sent}")
            self._line(f"  answer  {received}")
        return answer

    def put_file(self, local: Path, remote: str, sha256: str) -> dict[str, Any]:
        """Push through the inner transport, tracing size and time."""
        started = time.monotonic()
        result = self.inner.put_file(local, remote, sha256)
        stats = getattr(self.inner, "last_push", None)
        if isinstance(stats, PushStats):
            self._line(f"put_file {remote}  {stats.describe()}")
        else:
            seconds = time.monotonic() - started
            self._line(f"put_file {remote}  "
                       f"{PushStats(local.stat().st_size, seconds).describe()}")
        return result

    def close(self) -> None:
        """Close the inner transport."""
        self.inner.close()
