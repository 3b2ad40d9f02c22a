"""The psrp transport (and, where the scenario is the same, the winrm one) against the lab's
WS-Man endpoint on real loopback sockets: real pypsrp/pywinrm, real NTLM, real TLS.

Mocked: nothing on the wire. A Windows machine cannot run here: `pushinstall.lab.LabHost` answers
in its place. Times are scaled down: a 3.5 s installer against a 3 s read timeout stands for the
issue's 90 s installer against 30 s.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
from kit import OS_FACTS, Wire, run_asr

from pushinstall import events
from pushinstall.engine.support import Backoff, Deadline, RetryPolicy
from pushinstall.errors import (
    AuthenticationFailed,
    RemoteOpFailed,
    TransportError,
    TransportTimeout,
    Unreachable,
)
from pushinstall.model import Status
from pushinstall.remote import ops
from pushinstall.secret import Redactor
from pushinstall.transports.base import Transport
from pushinstall.transports.psrp import PSRPTransport
from pushinstall.transports.push import STREAM_BLOCK, STREAM_WAY, stream_blocks
from pushinstall.transports.trace import TracingTransport
from pushinstall.transports.winrm import WinRMTransport
from pushinstall.transports.wsman_common import GuardedCommand

KINDS = ["psrp", "winrm"]
HOSTS = ["lab-web01", "lab-app02"]  # app02 starts with a pending reboot: the run restarts it


def _open(wire: Wire, name: str, kind: str, **settings: object) -> Transport:
    host = wire.host(name, transport=kind, **settings)  # type: ignore[arg-type]
    transport: Transport = PSRPTransport(host) if kind == "psrp" else WinRMTransport(host)
    transport.open()
    return transport


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("auth", "tls"), [("ntlm", False), ("basic", True)],
                         ids=["ntlm-encrypted-http", "basic-https"])
def test_asr_playbook_runs_green_end_to_end(wire: Wire, kind: str, auth: str, tls: bool) -> None:
    summary, sink = run_asr(wire.factory(kind, auth, tls), HOSTS)
    assert summary.exit_code == 0, [(o.host, o.status, o.message)
                                    for o in summary.hosts.values()]
    assert {o.status for o in summary.hosts.values()} == {Status.CHANGED}
    assert any(isinstance(e, events.RebootEvent) for e in sink.events)
    again, _ = run_asr(wire.factory(kind, auth, tls), HOSTS)
    assert {o.status for o in again.hosts.values()} == {Status.OK}


@pytest.mark.parametrize("kind", KINDS)
def test_wrong_password_is_an_auth_error_with_a_hint_and_others_go_on(wire: Wire,
                                                                      kind: str) -> None:
    wire.client_passwords["lab-web02"] = "not-the-password"
    summary, _ = run_asr(wire.factory(kind, "ntlm", False), ["lab-web01", "lab-web02"])
    bad, good = summary.hosts["lab-web02"], summary.hosts["lab-web01"]
    assert bad.status == Status.UNREACHABLE
    assert "refused the credentials" in bad.message
    assert "LocalAccountTokenFilterPolicy" in bad.message
    assert good.status == Status.CHANGED
    with pytest.raises(AuthenticationFailed) as caught:
        _open(wire, "lab-web02", kind, password="not-the-password")
    assert caught.value.transient is False


@pytest.mark.parametrize("kind", KINDS)
def test_503s_then_success_are_retried_and_green(wire: Wire, kind: str) -> None:
    model = wire.serve("h1", {"http_503": 2})
    host = wire.host("h1", transport=kind)
    transport: Transport = PSRPTransport(host) if kind == "psrp" else WinRMTransport(host)
    with pytest.raises(Unreachable, match="503"):
        transport.open()                    # one attempt: retrying is the engine's job
    RetryPolicy(2, Backoff(0.01, 0.05), Deadline(30)).run(transport.open)
    assert transport.call(OS_FACTS)["ok"] is True
    transport.close()
    assert model.take_http_503() is False  # both 503s were spent
    summary, _ = run_asr(wire.factory(kind, "ntlm", False), ["lab-web01"],
                         lab={"lab-web01": {"http_503": 3}})
    assert summary.hosts["lab-web01"].status == Status.CHANGED


@pytest.mark.parametrize("kind", KINDS)
def test_dropped_connection_during_a_non_idempotent_op_is_not_resent(wire: Wire,
                                                                      kind: str) -> None:
    model = wire.serve("h1", {"drop_connection_on": ["set_service"]})
    transport = _open(wire, "h1", kind)
    request = ops.request("set_service", name="W32Time", state="running")
    with pytest.raises(Unreachable) as caught:
        transport.call(request)             # a transport never re-sends by itself
    assert "may or may not have run" in str(caught.value)
    assert model.op_log.count("set_service") == 1  # ran once, never re-sent
    assert transport.call(OS_FACTS)["ok"] is True  # the next call reconnects
    transport.close()


@pytest.mark.parametrize("kind", KINDS)
def test_a_long_installer_outlives_the_read_timeout(wire: Wire, kind: str) -> None:
    # Scaled down: a 3.5 s silent installer against a 3 s read timeout (the least a WS-Man
    # transport takes: it polls every second below it)
    wire.serve("h1", {"installer_seconds": 3.5})
    transport = _open(wire, "h1", kind, read_timeout=3.0, operation_timeout=20.0)
    started = time.monotonic()
    answer = transport.call(ops.request(
        "run_process", path="C:\\Windows\\System32\\msiexec.exe",
        arguments=["/i", "C:\\Temp\\nothing.msi", "/qn"]))
    elapsed = time.monotonic() - started
    transport.close()
    assert answer["ok"] is True and elapsed >= 3.5, (answer, elapsed)


@pytest.mark.parametrize("kind", KINDS)
def test_a_hung_server_is_a_read_timeout_and_the_step_deadline_bounds_a_call(
        wire: Wire, kind: str) -> None:
    wire.serve("h1", {"installer_seconds": 30})
    transport = _open(wire, "h1", kind, read_timeout=3.0)
    other = _open(wire, "h1", kind, read_timeout=3.0)
    started = time.monotonic()
    with pytest.raises(TransportTimeout, match="within 1 s"):
        transport.call(ops.request("run_process", path="C:\\Windows\\System32\\msiexec.exe",
                                   arguments=["/i", "C:\\Temp\\x.msi", "/qn"]), timeout=1)
    assert time.monotonic() - started < 5
    wire.endpoint.faults("h1").stall_s = 5
    started = time.monotonic()
    with pytest.raises(TransportTimeout, match="read timeout"):
        other.call(OS_FACTS)
    assert time.monotonic() - started < 5
    wire.endpoint.faults("h1").stall_s = 0
    transport.close()
    other.close()


BIG = 6 * 1024 * 1024   # 17 stream blocks and a bit (20 MB proved no more, at 3x the CPU)


@pytest.mark.parametrize("kind", KINDS)
def test_a_big_push_arrives_with_its_sha256(wire: Wire, kind: str, tmp_path: Path) -> None:
    model = wire.serve("h1")
    local = tmp_path / "big.bin"
    local.write_bytes(os.urandom(BIG))
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    transport = _open(wire, "h1", kind)
    result = transport.put_file(local, "C:\\Temp\\big.bin", digest)
    transport.close()
    assert result == {"changed": True, "sha256": digest, "size": BIG}
    assert hashlib.sha256(model.file_content("C:\\Temp\\big.bin")).hexdigest() == digest
    # the bytes went once-encoded on the receiver's stdin: one file_chunk, not one per MiB
    assert model.op_log[-3:] == ["file_begin", "file_chunk", "file_end"]
    stats = transport.last_push  # type: ignore[attr-defined]
    assert stats.size == BIG and stats.requests > BIG // STREAM_BLOCK   # a request a block
    assert 1.3 < stats.bytes_sent / stats.size < 1.4


@pytest.mark.parametrize("kind", KINDS)
def test_a_chunk_corrupted_on_the_way_fails_the_sha256_and_leaves_nothing(
        wire: Wire, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = wire.serve("h1")
    local = tmp_path / "x.bin"
    local.write_bytes(os.urandom(1024 * 1024))
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    transport = _open(wire, "h1", kind)
    real_seal = GuardedCommand.seal

    def flip_last_byte(self: GuardedCommand, data: bytes, end: bool) -> Any:
        # the line between controller and target damages one byte of the last Send
        return real_seal(self, data[:-1] + bytes([data[-1] ^ 1]) if end else data, end)

    monkeypatch.setattr(GuardedCommand, "seal", flip_last_byte)
    with pytest.raises(RemoteOpFailed) as failed:
        transport.put_file(local, "C:\\Temp\\x.bin", digest)
    transport.close()
    assert failed.value.error_type == "HashMismatch"
    assert model.op_log[-3:] == ["file_begin", "file_chunk", "file_end"]
    assert not any(path.lower().startswith("c:\\temp\\x.bin")
                   for path in model.state.fs.files)


def test_the_agent_is_defined_once_per_pool(wire: Wire) -> None:
    wire.serve("h1")
    transport = _open(wire, "h1", "psrp")
    before = wire.endpoint.counters("h1").bytes_in
    for _ in range(3):
        transport.call(OS_FACTS)
    per_call = (wire.endpoint.counters("h1").bytes_in - before) / 3
    transport.close()
    assert per_call < 20_000  # the 74 KB agent is not sent again


def test_a_restart_drops_the_pool_and_a_new_transport_finds_the_new_boot(wire: Wire) -> None:
    wire.serve("h1", {"reboot_seconds": 0.5})
    transport = _open(wire, "h1", "psrp")
    boot = ops.result_of(transport.call(OS_FACTS))["os"]["last_boot_time"]
    assert transport.call(ops.request("reboot", reason="test"))["ok"] is True
    with pytest.raises(Unreachable):
        transport.call(OS_FACTS)
    transport.close()
    time.sleep(0.6)
    again = _open(wire, "h1", "psrp")
    assert ops.result_of(again.call(OS_FACTS))["os"]["last_boot_time"] != boot
    again.close()


def test_basic_over_plain_http_is_refused_before_any_connection(wire: Wire) -> None:
    wire.serve("h1")
    host = wire.host("h1", auth="basic")
    with pytest.raises(TransportError, match="Basic credentials over plain HTTP"):
        PSRPTransport(host)
    assert wire.endpoint.counters("h1").connections == 0


@pytest.mark.parametrize("kind", KINDS)
def test_minus_vv_prints_each_push_with_its_requests_bytes_and_rate(
        wire: Wire, kind: str, tmp_path: Path) -> None:
    wire.serve("h1")
    local = tmp_path / "t.bin"
    local.write_bytes(os.urandom(1024 * 1024))
    stream = io.StringIO()
    traced = TracingTransport(_open(wire, "h1", kind), "h1", 2, Redactor(), stream)
    traced.put_file(local, "C:\\Temp\\t.bin", hashlib.sha256(local.read_bytes()).hexdigest())
    traced.close()
    line = stream.getvalue().splitlines()[-1]
    assert re.search(r" h1  put_file C:\\Temp\\t\.bin  1,048,576 B in \d+\.\d\ds, "
                     r"\d+\.\d MB/s, \d+ requests, [\d,]+ B sent \(x1\.\d\d\), "
                     + re.escape(STREAM_WAY) + "$", line), line


@pytest.mark.parametrize("size", [0, 1, STREAM_BLOCK - 1, STREAM_BLOCK, 3 * STREAM_BLOCK + 5])
def test_the_push_stream_cuts_head_and_file_into_blocks_under_the_envelope(size: int) -> None:
    data = os.urandom(size)
    blocks = list(stream_blocks(b"H" * 1000, io.BytesIO(data)))
    assert b"".join(block for block, _ in blocks) == b"H" * 1000 + data
    assert all(len(block) <= STREAM_BLOCK for block, _ in blocks)
    assert [last for _, last in blocks] == [False] * (len(blocks) - 1) + [True]
