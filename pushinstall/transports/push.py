"""Push a controller file to a target with the op protocol: `file_begin`, the bytes,
`file_end` (docs/ops.md), sha256 checked by `file_end` on the target.

The bytes go one of two ways. With a `stream` (the WS-Man transports: a WinRS command's
stdin, `remote/receiver.py`) the whole file is ONE `file_chunk` whose raw bytes follow its
request line on the receiver's stdin, in Sends of `STREAM_BLOCK` bytes: WS-Man base64s them
once (about 1.34x the file on the wire). Without one, `file_chunk` calls carry base64 `data`
(any transport whose `call` speaks the protocol). Nothing is compressed: installers are
compressed already, and base64 is what the encoding costs.

A stream the host refuses to start (`ShellRefused`: WinRS shells or the receiver's command are
not allowed to this user) falls back to `file_chunk` calls for the same `file_begin`: the file
ops are stateless on the target (docs/ops.md), so the temporary file it answered takes the
chunks of any agent session, and `file_end` checks the sha256 either way.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Generic, Protocol, TypeVar

from pushinstall.errors import HostError, RemoteOpFailed, ShellRefused
from pushinstall.remote import ops, receiver

log = logging.getLogger(__name__)
T = TypeVar("T")

CHUNK_SIZE = 1024 * 1024
# Raw bytes per Send: base64 of it plus the SOAP envelope (~2 KB) stays under 512,000 bytes,
# MaxEnvelopeSizekb 500, the WinRM default on Server 2012 R2 and later (150 before).
STREAM_BLOCK = 360 * 1024
# how a push went, as -vv says it
STREAM_WAY = "on the WinRS receiver's stdin"
CALLS_WAY = "in file_chunk calls over the agent session (the host refuses the WinRS receiver)"


class Caller(Protocol):
    """Anything with the transport's `call`."""

    def call(self, request: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Send one request; return its answer."""
        ...


class StdinCommand(Protocol):
    """A remote process being fed stdin (the receiver on a WinRS shell), a Send at a time:
    `seal` makes the Send of `data` (`end` closes stdin) without sending anything, and may
    run in another thread while the Send before it is posted; `post` sends one and waits
    for its answer. Sends are sealed and posted in the same order, one at a time."""

    def seal(self, data: bytes, end: bool) -> Any:
        """The Send of `data`, ready to post."""

    def post(self, sealed: Any) -> None:
        """Send what `seal` made; wait for its answer."""

    def output(self) -> str:
        """Wait for the process to end; its stdout and then stderr as text."""

    def close(self) -> None:
        """Free the command (and its shell); safe after a failure."""


@dataclass(frozen=True)
class PushStats:
    """What one push cost: bytes of the file, seconds, and when the transport counts its
    HTTP traffic, the requests and the bytes it sent (bodies as they went on the wire)."""

    size: int
    seconds: float
    requests: int | None = None
    bytes_sent: int | None = None
    way: str | None = None      # STREAM_WAY or CALLS_WAY, when the transport has both

    @property
    def mb_per_s(self) -> float:
        """The file's megabytes (10**6 bytes) per second."""
        return self.size / max(self.seconds, 1e-6) / 1e6

    def describe(self) -> str:
        """One line for -vv: size, time, rate, and the wire figures when known."""
        text = f"{self.size:,} B in {self.seconds:.2f}s, {self.mb_per_s:.1f} MB/s"
        if self.requests is not None and self.bytes_sent is not None:
            text += (f", {self.requests} requests, {self.bytes_sent:,} B sent"
                     f" (x{self.bytes_sent / max(self.size, 1):.2f})")
        if self.way:
            text += f", {self.way}"
        return text


def push_file(caller: Caller, local: Path, remote: str, sha256: str, host: str | None = None,
              chunk_size: int = CHUNK_SIZE,
              stream: Callable[[], StdinCommand] | None = None) -> dict[str, Any]:
    """Copy `local` to `remote` on the target; returns `file_end`'s result (`changed`,
    `sha256`, `size`). With `stream` (a function starting the receiver) the bytes go on its
    stdin, else — or when starting it raises `ShellRefused` — in `chunk_size` `file_chunk`
    calls. An error answer raises `RemoteOpFailed`
    (e.g. `DiskFull` from `file_begin`, `HashMismatch` from `file_end`); a push that fails
    after `file_begin` removes its temporary file on the target when it still can."""
    size = local.stat().st_size
    begin = ops.result_of(
        caller.call(ops.request("file_begin", destination=remote, size=size, sha256=sha256)),
        host=host,
    )
    temp_path = str(begin["temp_path"])
    try:
        command = _started(stream)
        if command is not None:
            _stream(command, local, temp_path, size, host)
        else:
            _chunks(caller, local, temp_path, chunk_size, host)
    except HostError:
        _remove_quietly(caller, temp_path, host)
        raise
    result: dict[str, Any] = ops.result_of(
        caller.call(ops.request("file_end", temp_path=temp_path, destination=remote,
                                sha256=sha256)),
        host=host,
    )
    return result


def _chunks(caller: Caller, local: Path, temp_path: str, chunk_size: int,
            host: str | None) -> None:
    with local.open("rb") as source:
        offset = 0
        while chunk := source.read(chunk_size):
            data = base64.b64encode(chunk).decode("ascii")
            ops.result_of(caller.call(ops.request(
                "file_chunk", temp_path=temp_path, offset=offset, data=data)), host=host)
            offset += len(chunk)


def _started(start: Callable[[], StdinCommand] | None) -> StdinCommand | None:
    """The receiver `start` started; None without one or when the host refuses it."""
    if start is None:
        return None
    try:
        return start()
    except ShellRefused:
        return None


def _stream(command: StdinCommand, local: Path, temp_path: str, size: int,
            host: str | None) -> None:
    try:
        head = receiver.prefix() + receiver.header(temp_path, 0, size)
        with local.open("rb") as source, OneAhead(
                command.seal(block, last) for block, last in stream_blocks(head, source)
        ) as sealed:
            for send in sealed:
                command.post(send)
        output = command.output()
    finally:
        command.close()
    written = ops.result_of(ops.decode_answer(output, host=host), host=host)
    if written.get("size") != size:
        raise RemoteOpFailed(f"the receiver wrote {written.get('size')} of {size} bytes",
                             host=host, error_type="Exception")


def stream_blocks(head: bytes, source: BinaryIO) -> Iterator[tuple[bytes, bool]]:
    """`head` then all of `source` in pieces of at most STREAM_BLOCK, each with "is last"."""
    pending, done = bytearray(head), False
    while True:
        if not done and len(pending) < STREAM_BLOCK:
            more = source.read(STREAM_BLOCK - len(pending))
            done = not more
            pending += more
            continue
        block = bytes(pending[:STREAM_BLOCK])
        del pending[:STREAM_BLOCK]
        last = done and not pending
        yield block, last
        if last:
            return


class OneAhead(Generic[T]):
    """`items` made one ahead in a thread of their own: item N+1 is being made while the
    caller works on item N, never more than that; each comes in order, and an exception
    making one is raised to the caller in its turn. A context manager: leaving it waits for
    the item in the making and closes `items`.

    The push's Sends are made (read, base64, envelope, encryption: mostly C) while the Send
    before is on the wire and the host works on it; the Sends themselves stay in the
    caller's thread, one at a time and in order, as WS-Man wants one command's stdin."""

    def __init__(self, items: Iterator[T]) -> None:
        self._items = items
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="pushinstall-push")
        self._next: Future[T | _End] | None = None

    def __enter__(self) -> Iterator[T]:
        self._next = self._pool.submit(next, self._items, _END)
        return self._taken()

    def _taken(self) -> Iterator[T]:
        while self._next is not None:
            item = self._next.result()
            if isinstance(item, _End):
                self._next = None
                return
            self._next = self._pool.submit(next, self._items, _END)
            yield item

    def __exit__(self, *exc: object) -> None:
        if self._next is not None:
            wait([self._next])         # the item in the making: finished, then dropped
            self._next = None
        self._pool.shutdown(wait=True)
        close = getattr(self._items, "close", None)
        if close is not None:          # a generator's own cleanup (its file), in this thread
            close()


class _End:
    """No more items."""


_END = _End()


def _remove_quietly(caller: Caller, path: str, host: str | None) -> None:
    try:
        caller.call(ops.request("remove_file", path=path))
    except HostError as exc:
        log.debug("%s: could not remove %s after a failed push: %s", host, path, exc)
