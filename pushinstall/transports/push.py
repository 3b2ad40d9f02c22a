"""Push a controller file to a target with the op protocol: `file_begin`, `file_chunk`s,
`file_end` (docs/ops.md). Any transport whose `call` speaks the protocol can use it."""

from __future__ import annotations

import base64
import logging
import time
from pathlib import Path
from typing import Any, Protocol

from pushinstall.errors import HostError
from pushinstall.remote import ops

log = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024


class Caller(Protocol):
    """Anything with the transport's `call`."""

    def call(self, request: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Send one request; return its answer."""
        ...


def push_file(caller: Caller, local: Path, remote: str, sha256: str, host: str | None = None,
              chunk_size: int = CHUNK_SIZE) -> dict[str, Any]:
    """Copy `local` to `remote` on the target in `chunk_size` pieces; returns `file_end`'s
    result (`changed`, `sha256`, `size`). An error answer raises `RemoteOpFailed` (e.g.
    `DiskFull` from `file_begin`, `HashMismatch` from `file_end`); a push that fails after
    `file_begin` removes its temporary file on the target when it still can. The rate goes
    to the debug log."""
    started = time.monotonic()
    size = local.stat().st_size
    begin = ops.result_of(
        caller.call(ops.request("file_begin", destination=remote, size=size, sha256=sha256)),
        host=host,
    )
    temp_path = str(begin["temp_path"])
    try:
        with local.open("rb") as source:
            offset = 0
            while chunk := source.read(chunk_size):
                data = base64.b64encode(chunk).decode("ascii")
                ops.result_of(caller.call(ops.request(
                    "file_chunk", temp_path=temp_path, offset=offset, data=data)), host=host)
                offset += len(chunk)
    except HostError:
        _remove_quietly(caller, temp_path, host)
        raise
    result: dict[str, Any] = ops.result_of(
        caller.call(ops.request("file_end", temp_path=temp_path, destination=remote,
                                sha256=sha256)),
        host=host,
    )
    elapsed = max(time.monotonic() - started, 1e-6)
    log.debug("%s: pushed %s (%d bytes) in %.2f s, %.1f MB/s", host, remote, size, elapsed,
              size / elapsed / 1e6)
    return result


def _remove_quietly(caller: Caller, path: str, host: str | None) -> None:
    try:
        caller.call(ops.request("remove_file", path=path))
    except HostError as exc:
        log.debug("%s: could not remove %s after a failed push: %s", host, path, exc)
