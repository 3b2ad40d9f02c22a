"""The push stream made one Send ahead (transports/push.py `OneAhead`, transports/
sealed_sends.py): over real psrp and winrm against the lab's WS-Man endpoint (real pypsrp and
pywinrm, NTLM, message encryption), the next Send is built and encrypted in the push's own
thread while the one before is in flight; the Sends themselves go one at a time, in order,
from the host's thread; the file arrives byte for byte with its sha256 checked by `file_end`;
a Send that fails in the middle stops the push, removes the temporary file and leaves no
shell behind, though the connection it spent was given up.

Nothing is mocked but a fault the lab host (the stand-in for Windows) answers: a Send
refused halfway, as a WinRM service in trouble answers a WS-Man fault.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kit import OS_FACTS, Wire

from pushinstall.errors import HostError
from pushinstall.lab.wsman import soap
from pushinstall.lab.wsman.shells import CmdShell, Reply
from pushinstall.transports.push import STREAM_BLOCK, OneAhead
from pushinstall.transports.wsman_common import GuardedCommand

KINDS = ["psrp", "winrm"]


class Recorder:
    """What the push's two threads did, in the order they did it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, int, str]] = []   # (what, block, thread)
        self.spent: list[bool] = []
        self._lock = threading.Lock()
        real_seal, real_post = GuardedCommand.seal, GuardedCommand.post
        recorder = self

        def seal(command: GuardedCommand, data: bytes, end: bool) -> Any:
            index = recorder._note("seal start", None)
            made = real_seal(command, data, end)
            recorder._note("seal done", index)
            recorder.spent.append(made.spent)
            return (index, made)

        def post(command: GuardedCommand, sealed: Any) -> None:
            index, made = sealed
            recorder._note("post start", index)
            real_post(command, made)
            recorder._note("post done", index)

        monkeypatch.setattr(GuardedCommand, "seal", seal)
        monkeypatch.setattr(GuardedCommand, "post", post)

    def _note(self, what: str, index: int | None) -> int:
        with self._lock:
            if index is None:
                index = sum(1 for event in self.events if event[0] == "seal start")
            self.events.append((what, index, threading.current_thread().name))
            return index

    def of(self, what: str) -> list[tuple[int, str]]:
        return [(index, thread) for kind, index, thread in self.events if kind == what]


@pytest.mark.parametrize("kind", KINDS)
def test_a_pipelined_push_arrives_byte_for_byte_its_sends_in_order_one_ahead(
        wire: Wire, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = wire.serve("h1")
    local = tmp_path / "big.bin"
    local.write_bytes(os.urandom(6 * STREAM_BLOCK + 12345))
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    transport = wire.opened("h1", kind)
    recorder = Recorder(monkeypatch)
    result = transport.put_file(local, "C:\\Temp\\big.bin", digest)
    transport.close()
    assert result == {"changed": True, "sha256": digest, "size": local.stat().st_size}
    assert hashlib.sha256(model.file_content("C:\\Temp\\big.bin")).hexdigest() == digest
    seals, posts = recorder.of("seal start"), recorder.of("post start")
    assert len(posts) == len(seals) == 7     # the head and the file, in 360 KiB blocks
    # made in the push's thread, sent from the caller's, in the order they were made
    assert {thread for _, thread in seals} == {"pushinstall-push_0"}
    assert {thread for _, thread in posts} == {threading.current_thread().name}
    assert [index for index, _ in posts] == list(range(len(seals)))
    # one ahead, never more: when Send k goes, at most Send k+1 has been started
    for position, event in enumerate(recorder.events):
        if event[0] == "post start":
            started = sum(1 for e in recorder.events[:position] if e[0] == "seal start")
            assert started <= event[1] + 2, recorder.events
    assert all(recorder.spent)     # NTLM with extended session security: encrypted ahead


def _refusing_send(after: int) -> Any:
    """CmdShell.do_send answering a WS-Man fault to the receiver's Send number `after`."""
    real = CmdShell.do_send
    seen: dict[str, int] = {}

    def do_send(shell: CmdShell, request: soap.SoapRequest) -> Reply:
        stream = request.body.find("rsp:Send/rsp:Stream", soap.NS)
        command = shell.commands.get(stream.get("CommandId", "") if stream is not None else "")
        if command is not None and command.is_receiver:
            seen[command.command_id] = seen.get(command.command_id, 0) + 1
            if seen[command.command_id] == after:
                return Reply(soap.fault(request, 1726, "The remote procedure call failed."),
                             500)
        return real(shell, request)
    return do_send


@pytest.mark.parametrize("kind", KINDS)
def test_a_send_failing_halfway_stops_the_push_removes_the_temp_file_and_no_shell_stays(
        wire: Wire, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = wire.serve("h1")
    local = tmp_path / "x.bin"
    local.write_bytes(os.urandom(8 * STREAM_BLOCK))
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    transport = wire.opened("h1", kind)
    assert transport.call(OS_FACTS)["ok"] is True
    recorder = Recorder(monkeypatch)
    monkeypatch.setattr(CmdShell, "do_send", _refusing_send(after=3))
    with pytest.raises(HostError, match="remote procedure call failed"):
        transport.put_file(local, "C:\\Temp\\x.bin", digest)
    # the failed Send was the last one posted; the one made after it never went
    assert [index for index, _ in recorder.of("post start")] == [0, 1, 2]
    assert len(recorder.of("seal done")) == 4
    pushed = model.op_log[model.op_log.index("file_begin"):]
    assert pushed[-1] == "remove_file" and "file_end" not in pushed
    assert not any(path.lower().startswith("c:\\temp\\x.bin")
                   for path in model.state.fs.files)
    assert transport.call(OS_FACTS)["ok"] is True     # a new connection serves the host
    transport.close()
    assert wire.endpoint.open_shells("h1") == 0      # the spent connection's shells too


def test_one_ahead_keeps_order_raises_in_turn_and_closes_what_it_read() -> None:
    made: list[int] = []
    closed: list[bool] = []

    def items() -> Iterator[int]:
        try:
            for number in range(5):
                made.append(number)
                if number == 3:
                    raise ValueError("item 3 does not make")
                yield number
        finally:
            closed.append(True)

    taken = []
    with pytest.raises(ValueError, match="item 3"), OneAhead(items()) as ahead:
        for item in ahead:
            taken.append(item)
            assert len(made) <= item + 2     # never more than one ahead
    assert taken == [0, 1, 2] and closed == [True]

    def endless() -> Iterator[int]:
        try:
            number = 0
            while True:
                yield number
                number += 1
        finally:
            closed.append(True)

    with OneAhead(endless()) as ahead:
        assert next(iter(ahead)) == 0
    assert closed == [True, True]       # left early: the generator was closed


@pytest.mark.parametrize("kind", KINDS)
def test_an_empty_file_goes_as_the_stream_head_alone(wire: Wire, kind: str,
                                                     tmp_path: Path) -> None:
    model = wire.serve("h1")
    local = tmp_path / "small.bin"
    local.write_bytes(b"")       # the head alone: one Send, which ends stdin
    transport = wire.opened("h1", kind)
    result = transport.put_file(local, "C:\\Temp\\empty.bin", hashlib.sha256(b"").hexdigest())
    transport.close()
    assert result["size"] == 0 and model.file_content("C:\\Temp\\empty.bin") == b""
    assert transport.last_push is not None and transport.last_push.requests
