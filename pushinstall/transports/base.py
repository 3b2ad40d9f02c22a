"""The transport protocol every way of reaching a host implements."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol


class Transport(Protocol):
    """Open once per host per run, call many times, close.

    `call` sends one request (see docs/ops.md) and returns the decoded answer dict
    (`{"ok": ..., "result"|"error": ...}`). Transport failures raise the `TransportError`
    family from errors.py, mapped once inside the transport; an unreadable answer raises
    `RemoteOpFailed`. A transport never re-sends a request by itself: retrying is the caller's
    decision (only transient errors, only idempotent requests; see `ops.is_idempotent`).
    """

    def open(self) -> None:
        """Connect and authenticate; define the agent on the target when the session keeps it."""

    def call(self, request: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Send one request; return its answer. `timeout` bounds the whole call in seconds."""

    def put_file(self, local: Path, remote: str, sha256: str) -> dict[str, Any]:
        """Push a controller file to `remote`, sha256 checked; returns `file_end`'s result."""

    def close(self) -> None:
        """Release the connection; safe to call twice."""


def opened(transport: Transport) -> Transport:
    """`transport`, opened (connected, authenticated, agent defined); closed again if that
    fails, so a half-open session never lingers."""
    try:
        transport.open()
    except BaseException:
        transport.close()
        raise
    return transport
