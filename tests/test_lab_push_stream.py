"""What the lab's push receiver and the psrp push rely on to be cheap, held to what they must
still do: the receiver reads the stream's head as the Sends bring it and writes the chunk as
each Send arrives (no whole-stdin buffer), with the host free for other calls meanwhile; a
file appended in order keeps a running sha256 that is the sha256 of its content, so
`file_end` checks what was written without reading it back, and any other change of the file
drops it; over psrp, a Send encrypted ahead is POSTed through urllib3 directly, not through
requests, and the file still arrives byte for byte with its sha256 checked.

Real pypsrp and pywinrm against the lab's WS-Man endpoint over loopback (NTLM, message
encryption); the lab's file system on a real blob folder. Nothing is mocked: a few real
functions are wrapped to count calls or to look at the host between two Sends.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from kit import OS_FACTS, Wire

from pushinstall.lab.blobs import BlobStore
from pushinstall.lab.fs import FileSystem
from pushinstall.remote import ops, receiver
from pushinstall.transports.push import STREAM_BLOCK
from pushinstall.transports.wsman_common import GuardedCommand

KINDS = ["psrp", "winrm"]


class Pieces:
    """`data` handed out in pieces cut at `cuts`, counting how many were taken."""

    def __init__(self, data: bytes, cuts: list[int]) -> None:
        bounds = [0, *cuts, len(data)]
        self.pieces = [data[a:b] for a, b in itertools.pairwise(bounds)]
        self.taken = 0

    def __iter__(self) -> Iterator[bytes]:
        for piece in self.pieces:
            self.taken += 1
            yield piece


def test_the_stream_head_is_read_across_sends_and_the_payload_left_until_iterated() -> None:
    head = receiver.prefix() + receiver.header("C:\\t\\x.part", 0, 300_000)
    payload = os.urandom(300_000)
    line_end = len(head) - 1
    # the digits cut, the core cut, the request line cut twice, then the payload's Sends
    cuts = [5, 200, line_end - 40, line_end - 3, len(head) + 1000, len(head) + 150_000]
    stream = Pieces(head + payload, cuts)
    core, line, rest = receiver.split_stream(stream)
    assert core == ops.agent_core_held()
    assert line.encode("ascii") + b"\n" == receiver.header("C:\\t\\x.part", 0, 300_000)
    assert stream.taken == 5       # up to the piece holding the newline, nothing after it
    assert b"".join(rest) == payload and stream.taken == len(stream.pieces)


@pytest.mark.parametrize(("data", "message"), [
    (b"00000", "does not start with the core's length"),
    (b"000000000050" + b"x" * 10, "ended inside the agent core"),
    (receiver.prefix() + b"no newline", "no request line after the agent core"),
])
def test_a_stream_cut_short_in_its_head_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        receiver.split_stream(Pieces(data, [3]))


def _fs(tmp_path: Path) -> FileSystem:
    data = {"dirs": {}, "files": {}, "free_bytes": 10**9, "total_bytes": 10**9}
    return FileSystem(data, BlobStore(tmp_path / "blobs"))


def test_a_file_appended_in_order_is_hashed_as_written_and_other_writes_rehash(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fs = _fs(tmp_path)
    fs.make_dirs("C:\\Temp")
    pieces = [os.urandom(n) for n in (1, 4096, 100_000, 7)]
    fs.write("C:\\Temp\\a.part", b"")
    offset = 0
    for piece in pieces:
        fs.write_at("C:\\Temp\\a.part", offset, memoryview(piece))
        offset += len(piece)
    content = b"".join(pieces)
    reads: list[str] = []
    real_get = BlobStore.get

    def get(store: BlobStore, name: str) -> bytes:
        reads.append(name)
        return real_get(store, name)

    monkeypatch.setattr(BlobStore, "get", get)
    assert fs.sha256("C:\\Temp\\a.part") == hashlib.sha256(content).hexdigest()
    assert reads == []                # the running hash: nothing read back
    fs.move("C:\\Temp\\a.part", "C:\\Temp\\a.bin")
    assert fs.sha256("C:\\Temp\\a.bin") == hashlib.sha256(content).hexdigest()
    assert reads == [] and fs.read("C:\\Temp\\a.bin") == content

    fs.write_at("C:\\Temp\\a.bin", 10, b"XY")             # not an append: hashed again
    changed = content[:10] + b"XY" + content[12:]
    assert fs.sha256("C:\\Temp\\a.bin") == hashlib.sha256(changed).hexdigest()
    fs.write_at("C:\\Temp\\a.bin", len(changed), b"tail")  # still read back, not trusted
    assert fs.sha256("C:\\Temp\\a.bin") == hashlib.sha256(changed + b"tail").hexdigest()

    fs.write("C:\\Temp\\b.part", b"")
    fs.write_at("C:\\Temp\\b.part", 5, b"gap")              # a gap, zero-filled
    assert fs.sha256("C:\\Temp\\b.part") == hashlib.sha256(b"\0" * 5 + b"gap").hexdigest()
    fs.remove("C:\\Temp\\b.part")
    fs.write("C:\\Temp\\b.part", b"new")                    # made again, not empty
    fs.write_at("C:\\Temp\\b.part", 3, b"er")
    assert fs.sha256("C:\\Temp\\b.part") == hashlib.sha256(b"newer").hexdigest()


def test_a_short_stream_is_refused_after_what_arrived_was_written(wire: Wire) -> None:
    model = wire.serve("h1")
    begin = model.handle(ops.request("file_begin", destination="C:\\Temp\\s.bin", size=10,
                                     sha256="0" * 64))
    temp = begin["result"]["temp_path"]
    line = receiver.header(temp, 0, 10)[:-1].decode("ascii")
    answer = ops.decode_answer(model.handle_stream(line, iter([b"123", b"45"])))
    assert answer == {"ok": False, "error": {
        "type": "InvalidArgument", "message": "the push stream ended after 5 of 10 bytes"}}
    assert model.file_content(temp) == b"12345"       # as the core's ChunkFrom leaves it


def _wait_for(ready: Any, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.parametrize("kind", KINDS)
def test_each_send_is_written_as_it_arrives_and_the_host_answers_other_calls_meanwhile(
        wire: Wire, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = wire.serve("h1")
    local = tmp_path / "big.bin"
    local.write_bytes(os.urandom(6 * STREAM_BLOCK))
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    temp = "C:\\Temp\\big.bin.0123456789ab.pushinstall-part"     # as long as file_begin's
    head = len(receiver.prefix()) + len(receiver.header(temp, 0, 6 * STREAM_BLOCK))
    transport, other = wire.opened("h1", kind), wire.opened("h1", kind)
    seen: list[tuple[int, bool]] = []
    activity: list[float] = []     # the host's last call (or Send) after each Send
    real_post = GuardedCommand.post

    def post(command: GuardedCommand, sealed: Any) -> None:
        real_post(command, sealed)
        if len(seen) < 3 and threading.current_thread() is threading.main_thread():
            sent = (len(seen) + 1) * STREAM_BLOCK - head     # of the file, so far
            part = next(path for path in model.state.fs.files if path.endswith(".pushinstall-part"))
            written = _wait_for(lambda: model.state.fs.size(part) >= sent)
            seen.append((model.state.fs.size(part), written))
            activity.append(model.last_call)
            if len(seen) == 3:
                assert other.call(OS_FACTS)["ok"] is True     # while the stream is open

    monkeypatch.setattr(GuardedCommand, "post", post)
    result = transport.put_file(local, "C:\\Temp\\big.bin", digest)
    transport.close()
    other.close()
    assert result == {"changed": True, "sha256": digest, "size": 6 * STREAM_BLOCK}
    assert model.file_content("C:\\Temp\\big.bin") == local.read_bytes()
    assert [written for _, written in seen] == [True, True, True]
    assert seen[0][0] < seen[1][0] < seen[2][0] < 6 * STREAM_BLOCK   # in steps, not at End
    # each Send counts as the host's activity (the flusher's "quiet" is no call for
    # QUIET_SECONDS): a host is not saved half-written while its Sends keep coming
    assert activity[0] < activity[1] < activity[2], activity


def test_a_psrp_push_posts_its_sends_past_requests_and_counts_them(
        wire: Wire, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = wire.serve("h1")
    local = tmp_path / "big.bin"
    local.write_bytes(os.urandom(4 * STREAM_BLOCK + 99))
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    transport = wire.opened("h1", "psrp")
    assert transport.call(OS_FACTS)["ok"] is True
    through_requests: list[str] = []
    real_send = requests.Session.send

    def send(session: requests.Session, request: Any, **kwargs: Any) -> Any:
        through_requests.append(str(request.body)[:40])
        return real_send(session, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", send)
    posts: list[int] = []
    real_post = GuardedCommand.post

    def post(command: GuardedCommand, sealed: Any) -> None:
        posts.append(len(through_requests))
        real_post(command, sealed)

    monkeypatch.setattr(GuardedCommand, "post", post)
    result = transport.put_file(local, "C:\\Temp\\big.bin", digest)
    stats = transport.last_push
    transport.close()
    assert result == {"changed": True, "sha256": digest, "size": local.stat().st_size}
    assert model.file_content("C:\\Temp\\big.bin") == local.read_bytes()
    assert len(posts) == 5 and posts == [posts[0]] * 5   # no Send went through requests
    assert stats is not None and stats.requests is not None and stats.bytes_sent is not None
    assert stats.requests >= len(posts) + 3               # begin, Command, output, end
    assert stats.bytes_sent > 1.3 * local.stat().st_size  # the Sends' bodies were counted


@pytest.mark.parametrize("kind", KINDS)
def test_a_push_with_basic_auth_over_plain_http_goes_with_its_credentials(
        wire: Wire, kind: str, tmp_path: Path) -> None:
    """No message encryption (Basic on an endpoint that allows plain HTTP): each Send goes
    through requests, which adds the Authorization header; the direct POST would send none."""
    model = wire.serve("lenient", allow_unencrypted=True)
    local = tmp_path / "x.bin"
    local.write_bytes(os.urandom(2 * STREAM_BLOCK + 7))
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    transport = wire.opened("lenient", kind, auth="basic", allow_unencrypted=True)
    try:
        assert transport.call(OS_FACTS)["ok"] is True
        result = transport.put_file(local, "C:\\Temp\\x.bin", digest)
    finally:
        transport.close()
    assert result["changed"] is True
    assert model.file_content("C:\\Temp\\x.bin") == local.read_bytes()
