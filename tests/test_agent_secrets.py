"""No secret reaches what a target can log: every script text, parameter value and stdin line
the lab's PSRP, WinRS and SSH endpoints receive is captured and searched for the secret, as
written and base64-decoded (docs/ops.md, "What a target's logs can show").

PSRP (the default transport) passes the request as a parameter of `Invoke-PushinstallOp`;
WinRS and SSH run one agent process per connection whose loop reads each request as a stdin
line of data. On all three the secret fields are sealed to the agent's session key.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kit import SSH_PASSWORD, SSH_USER, Wire, ssh_host

from pushinstall.lab import lab_host, received
from pushinstall.lab.ssh_server import SSHLabEndpoint
from pushinstall.lab.wsman.endpoint import WSManLabEndpoint
from pushinstall.remote import ops
from pushinstall.transports.base import Transport
from pushinstall.transports.psrp import PSRPTransport
from pushinstall.transports.ssh import SSHTransport
from pushinstall.transports.winrm import WinRMTransport

PASSPHRASE = "Tr0ub4dor&3-passphrase"
SHARE_PASSWORD = "share-hunter2-password"
_BASE64 = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")


def shows(texts: list[str], secret: str) -> bool:
    """True when `secret` is in a text, or in a base64 run inside one (decoded, and gunzipped
    when it is gzip)."""
    for text in texts:
        if secret in text:
            return True
        for run in _BASE64.findall(text):
            try:
                decoded = base64.b64decode(run + "=" * (-len(run) % 4))
            except (binascii.Error, ValueError):
                continue
            if decoded[:2] == b"\x1f\x8b":      # a packed request (or the packed agent)
                try:
                    decoded = gzip.decompress(decoded)
                except (OSError, EOFError):
                    continue
            if secret.encode() in decoded:
                return True
    return False


def test_the_search_finds_a_base64_secret() -> None:
    assert shows([ops.invocation(ops.request("write_secret", path="C:\\p", content=PASSPHRASE))],
                 PASSPHRASE)
    assert not shows(["nothing here"], PASSPHRASE)


def _secret_calls(transport: Transport) -> None:
    transport.open()
    try:
        _calls(transport)
    finally:
        transport.close()


def _calls(transport: Transport) -> None:
    transport.call(ops.request("write_secret", path="C:\\Temp\\passphrase.txt",
                               content=PASSPHRASE))
    transport.call(ops.batch([ops.request(
        "download", source="\\\\labshare\\asr\\MicrosoftAzureSiteRecoveryUnifiedSetup.exe",
        destination="C:\\Temp\\ua.exe",
        credential={"username": "LAB\\svc", "password": SHARE_PASSWORD})]))
    answer = transport.call(ops.request("facts", queries=[
        {"id": "p", "kind": "file", "path": "C:\\Temp\\passphrase.txt"}]))
    assert answer["ok"] and answer["result"]["p"]["exists"]


@pytest.fixture
def captured() -> Iterator[list[str]]:
    texts = received.start()
    yield texts
    received.stop()


@pytest.fixture
def wire(tmp_path: Path) -> Iterator[Wire]:
    with WSManLabEndpoint(tmp_path / "endpoint") as endpoint:
        yield Wire(endpoint)


def test_psrp_sends_no_secret_in_script_text_or_parameters(wire: Wire,
                                                           captured: list[str]) -> None:
    wire.serve("web01", {})
    _secret_calls(PSRPTransport(wire.host("web01", transport="psrp")))
    assert any("Invoke-PushinstallOp" in text for text in captured)
    assert not shows(captured, PASSPHRASE)
    assert not shows(captured, SHARE_PASSWORD)
    assert not any("-Request '" in text for text in captured)   # no request in script text


def test_winrs_sends_no_secret(wire: Wire, captured: list[str]) -> None:
    wire.serve("web01", {})
    _secret_calls(WinRMTransport(wire.host("web01", transport="winrm")))
    assert captured and not shows(captured, PASSPHRASE)


def test_ssh_sends_no_secret(tmp_path: Path, captured: list[str]) -> None:
    with SSHLabEndpoint(tmp_path / "ssh-lab") as endpoint:
        model: Any = lab_host("web01")
        endpoint.add_host(model, username=SSH_USER, password=SSH_PASSWORD)
        _secret_calls(SSHTransport(ssh_host(endpoint, "web01")))
    assert captured and not shows(captured, PASSPHRASE)


def test_one_key_pair_answers_one_key_to_concurrent_sessions() -> None:
    import threading

    from pushinstall.remote import sealing

    pair = sealing.KeyPair()
    lines: list[str] = []
    threads = [threading.Thread(target=lambda: lines.append(pair.key_line())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(lines)) == 1
    key = sealing.public_key_of(lines[0])
    assert key is not None
    sealed = sealing.seal(ops.request("write_secret", path="C:\\p", content="x"), key)
    assert pair.open(sealed)["args"]["content"] == "x"
