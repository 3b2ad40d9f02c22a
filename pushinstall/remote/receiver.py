"""The push stream: a file's bytes carried ONCE-encoded on a WinRS command's stdin.

A `file_chunk` call carries its bytes as base64 inside the JSON request, which the transport
base64s again (and WS-Man a third time for a Send): 2.4x the file on the wire. The stream
receiver is one WinRS command per push instead, `powershell -NoProfile -NonInteractive
-EncodedCommand <receiver.ps1>`, whose stdin carries the raw bytes; WS-Man base64s a Send's
stream once, so the wire holds about 1.34x the file (docs/ops.md, "file_chunk over a
stream"). Its stdin is, in order:

1. `prefix()`: 12 ASCII digits N and N bytes of the gzipped C# core as the shim holds it
   (`ops.agent_core_held()`) — a fresh process has no agent defined: the receiver loads the
   core's DLL from the target's cache when one there hashes to its name (the agent's
   `<sha256 of that text>-<sha256 of the DLL>.dll`, docs/ops.md), else compiles it
   (`Add-Type`, in memory);
2. `header(temp_path, offset, length)`: one line, a base64 `file_chunk` request whose `length`
   replaces `data`;
3. the `length` bytes.

The receiver answers one `PUSHINSTALL-ANSWER:` line, like every op. `split_stream` is the
inverse, for the lab's endpoint.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Iterable, Iterator
from pathlib import Path

from pushinstall.remote import bootstrap, compact, ops

EXECUTABLE = "powershell"
_DIGITS = 12
# one header line at most this long (a temp path of 32,767 UTF-16 characters, base64'd, fits)
HEADER_LIMIT = 256 * 1024


def receiver_path() -> Path:
    """Where receiver.ps1 lies in the installed package."""
    return Path(__file__).with_name("receiver.ps1")


@functools.lru_cache(maxsize=1)
def receiver_script() -> str:
    """receiver.ps1 compact (the command line is 8191 chars)."""
    return compact.powershell(receiver_path().read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=1)
def arguments() -> tuple[str, ...]:
    """powershell's arguments: the receiver as `-EncodedCommand` (UTF-16LE, base64)."""
    encoded = base64.b64encode(receiver_script().encode("utf-16-le")).decode("ascii")
    return ("-NoProfile", "-NonInteractive", "-EncodedCommand", encoded)


def command_line() -> str:
    """The whole command line, as the lab's WinRS shell compares it."""
    return " ".join((EXECUTABLE, *arguments()))


def prefix(core: str | None = None) -> bytes:
    """The stream's first part: the gzipped C# core (as the shim holds it) with its length."""
    packed = bootstrap.packed(ops.agent_core_held() if core is None else core)
    return f"{len(packed):0{_DIGITS}d}".encode("ascii") + packed


def header(temp_path: str, offset: int, length: int) -> bytes:
    """The request line for `length` bytes written at `offset` of `temp_path`."""
    request = ops.request("file_chunk", temp_path=temp_path, offset=offset, length=length)
    ops.validate_request(request)
    return ops.encode_request(request).encode("ascii") + b"\n"


def split_stream(pieces: Iterable[bytes]) -> tuple[str, str, Iterator[bytes]]:
    """Inverse of `prefix() + header() + payload` (the lab's side), read from `pieces` (the
    stdin Sends) as they come: `(core source, request line, the payload's pieces)`, the
    payload left in `pieces` until it is iterated, so nothing holds the whole stream. Raises
    ValueError when the stream does not start as such a stream does."""
    source = iter(pieces)
    head = bytearray()

    def has(count: int) -> bool:       # at least `count` bytes read, unless the stream ends
        while len(head) < count:
            piece = next(source, None)
            if piece is None:
                return False
            head.extend(piece)
        return True

    if not has(_DIGITS) or not head[:_DIGITS].isdigit():
        raise ValueError("the stream does not start with the core's length")
    end = _DIGITS + int(head[:_DIGITS])
    if not has(end):
        raise ValueError("standard input ended inside the agent core")
    try:
        core = bootstrap.expand(bytes(head[_DIGITS:end])).decode("utf-8")
    except ValueError as exc:   # not gzip, or not UTF-8
        raise ValueError(f"the agent core does not decode: {exc}") from None
    scanned, limit = end, end + HEADER_LIMIT
    while (newline := head.find(b"\n", scanned, limit)) < 0:
        scanned = min(len(head), limit)
        if scanned >= limit or not has(len(head) + 1):
            raise ValueError("no request line after the agent core")
    line = head[end:newline].decode("ascii", "replace")
    return core, line, _rest(bytes(head[newline + 1:]), source)


def _rest(first: bytes, source: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from source
