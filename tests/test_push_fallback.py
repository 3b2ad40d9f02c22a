"""A host that refuses the WinRS push receiver still gets its files: over real psrp and winrm
against the lab's WS-Man endpoint (real pypsrp/pywinrm, NTLM, message encryption), the push
goes as `file_chunk` calls over the agent session, the sha256 is checked by `file_end`, the
refusal is asked once per transport, and `-vv` says which way each push went.

The lab refuses as Windows answers (docs/lab.md, `winrs_refused`): `true` answers a cmd
shell's Create with the access-denied WS-Man fault (a user allowed the PowerShell endpoint
only, or AllowRemoteShellAccess off), `receiver` lets shells open but refuses the receiver's
command. No Windows host here: the lab stands in for it.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path

import pytest
from kit import FAST, LAB_INVENTORY, OS_FACTS, PASSWORD, SHIPPED, ListSink, Wire, recap

from pushinstall.engine import RunOptions, run_fleet
from pushinstall.errors import InputError, ShellRefused
from pushinstall.inventory import load_inventory
from pushinstall.lab import catalog, lab_host
from pushinstall.lab.vars import parse_lab_vars
from pushinstall.model import Status
from pushinstall.playbook import load_playbook
from pushinstall.remote import ops
from pushinstall.runner import resolve_run_secrets
from pushinstall.secret import Redactor
from pushinstall.transports.psrp import PSRPTransport
from pushinstall.transports.push import CALLS_WAY, STREAM_WAY
from pushinstall.transports.trace import TracingTransport
from pushinstall.transports.winrm import WinRMTransport

# (transport, the lab's refusal): psrp meets either; winrm needs its shell, so only the
# receiver's command can be refused to it
CASES = [("psrp", True), ("psrp", "receiver"), ("winrm", "receiver")]
BUNDLE = catalog.ASR_BUNDLE


def _transport(wire: Wire, name: str, kind: str) -> PSRPTransport | WinRMTransport:
    host = wire.host(name, transport=kind)
    transport = PSRPTransport(host) if kind == "psrp" else WinRMTransport(host)
    transport.open()
    return transport


@pytest.mark.parametrize(("kind", "refused"), CASES)
def test_the_shipped_install_converges_and_the_pushed_bundle_matches(
        wire: Wire, kind: str, refused: bool | str, tmp_path: Path) -> None:
    local = tmp_path / BUNDLE
    local.write_bytes(catalog.files()[BUNDLE])
    inventory = load_inventory([str(LAB_INVENTORY)])
    playbook = load_playbook(str(SHIPPED))
    host = inventory.hosts["lab-web01"]
    host.vars["lab"] = {"winrs_refused": refused}
    host.vars["asr_installer"] = str(local)     # the controller pushes the bundle
    resolve_run_secrets([host], playbook)
    made: list[PSRPTransport | WinRMTransport] = []

    def factory(inventory_host: object) -> PSRPTransport | WinRMTransport:
        model = wire.serve("lab-web01", {"winrs_refused": refused})
        assert model.lab.winrs_refused == refused
        transport = (PSRPTransport if kind == "psrp" else WinRMTransport)(
            wire.host("lab-web01", transport=kind))
        made.append(transport)
        return transport

    summary = run_fleet([host], playbook, RunOptions(backoff=FAST), [ListSink()],
                        transport_factory=factory)
    outcome = summary.hosts["lab-web01"]
    assert summary.exit_code == 0 and outcome.status == Status.CHANGED, outcome.message
    model = wire.serve("lab-web01")
    pushed = model.file_content(f"C:\\Temp\\ASR\\{BUNDLE}")
    assert hashlib.sha256(pushed).hexdigest() == catalog.sha256_of(BUNDLE)
    assert "file_end" in model.op_log and model.op_log.count("file_chunk") >= 1
    assert any(t.receiver_refused for t in made)
    assert wire.endpoint.winrs_refusals("lab-web01") == 1
    assert all(t.last_push is None or t.last_push.way == CALLS_WAY for t in made)


@pytest.mark.parametrize(("kind", "refused"), CASES)
def test_the_receiver_is_asked_once_per_transport_and_minus_vv_says_how_it_went(
        wire: Wire, kind: str, refused: bool | str, tmp_path: Path) -> None:
    model = wire.serve("h1", {"winrs_refused": refused})
    stream = io.StringIO()
    inner = _transport(wire, "h1", kind)
    traced = TracingTransport(inner, "h1", 2, Redactor(), stream)
    sizes = [1024 * 1024 + 7, 3 * 1024 * 1024, 0]
    for index, size in enumerate(sizes):
        local = tmp_path / f"f{index}.bin"
        local.write_bytes(os.urandom(size))
        digest = hashlib.sha256(local.read_bytes()).hexdigest()
        result = traced.put_file(local, f"C:\\Temp\\f{index}.bin", digest)
        assert result == {"changed": True, "sha256": digest, "size": size}
        assert hashlib.sha256(model.file_content(f"C:\\Temp\\f{index}.bin")).hexdigest() \
            == digest
    # the session the refusal came through still answers (it was not dropped)
    assert ops.result_of(traced.call(OS_FACTS))["os"]
    traced.close()
    assert wire.endpoint.winrs_refusals("h1") == 1, "a refusal is the host's policy: asked once"
    # 1 MiB chunks: 2 + 3 + 0 (an empty file has nothing to send)
    assert model.op_log.count("file_chunk") == 5
    lines = [line for line in stream.getvalue().splitlines() if " put_file " in line]
    assert len(lines) == 3
    for line in lines:
        assert re.search(r" h1  put_file C:\\Temp\\f\d\.bin  [\d,]+ B in \d+\.\d\ds, "
                         r"\d+\.\d MB/s, \d+ requests, [\d,]+ B sent \(x\d+\.\d\d\), "
                         + re.escape(CALLS_WAY) + "$", line), line
    assert PASSWORD not in stream.getvalue()


@pytest.mark.parametrize("kind", ["psrp", "winrm"])
def test_a_host_that_allows_the_receiver_still_gets_the_stream(
        wire: Wire, kind: str, tmp_path: Path) -> None:
    model = wire.serve("h1")
    local = tmp_path / "s.bin"
    local.write_bytes(os.urandom(2 * 1024 * 1024))
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    transport = _transport(wire, "h1", kind)
    transport.put_file(local, "C:\\Temp\\s.bin", digest)
    transport.close()
    assert model.op_log[-3:] == ["file_begin", "file_chunk", "file_end"]
    assert transport.last_push is not None and transport.last_push.way == STREAM_WAY
    assert not transport.receiver_refused and wire.endpoint.winrs_refusals("h1") == 0


def test_winrm_to_a_host_refusing_every_cmd_shell_is_a_refusal_that_names_psrp(
        wire: Wire) -> None:
    wire.serve("h1", {"winrs_refused": True})
    transport = WinRMTransport(wire.host("h1", transport="winrm"))
    with pytest.raises(ShellRefused) as refused:
        transport.open()
    transport.close()
    assert "Access is denied" in str(refused.value)
    assert "transport psrp" in (refused.value.hint or "")
    assert PASSWORD not in str(refused.value) + (refused.value.hint or "")
    assert not refused.value.transient


@pytest.mark.parametrize("value", ["yes", "shell", 1, ["receiver"]])
def test_winrs_refused_takes_a_boolean_or_receiver(value: object) -> None:
    with pytest.raises(InputError) as bad:
        parse_lab_vars({"winrs_refused": value})
    assert "winrs_refused" in str(bad.value)
    assert parse_lab_vars({"winrs_refused": "receiver"}).winrs_refused == "receiver"
    assert parse_lab_vars({}).winrs_refused is False


def test_a_run_over_the_psrp_wire_with_minus_vv_says_the_push_fell_back_and_shows_no_secret(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from asr_kit import MOBILITY, cli, fleet
    from asr_kit import PASSWORD as LAB_PASSWORD

    local = tmp_path / BUNDLE
    local.write_bytes(catalog.files()[BUNDLE])
    inventory = fleet(tmp_path, {"hardened": {"lab": {"winrs_refused": True},
                                              "asr_installer": str(local)}})
    code, out = cli(capsys, "run", "-vv", "-i", inventory, MOBILITY)
    assert code == 0, out
    assert recap(out)["hardened"] == "changed", out   # (trace lines hold "ok=" too)
    pushes = [line for line in out.splitlines() if " put_file " in line]
    assert len(pushes) == 1 and pushes[0].endswith(CALLS_WAY), pushes
    for secret in (LAB_PASSWORD, "lab-passphrase"):
        assert secret not in out
    model = lab_host("hardened")
    assert hashlib.sha256(model.file_content(f"C:\\Temp\\ASR\\{BUNDLE}")).hexdigest() \
        == catalog.sha256_of(BUNDLE)
