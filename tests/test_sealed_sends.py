"""A push's Send as `sealed_sends` builds it is the Send pypsrp's `WinRS.send` and pywinrm's
`Protocol.send_command_input` build (the stream's base64 spliced into the envelope changes no
byte), and `seals_apart` knows which security contexts may encrypt ahead.

Nothing is mocked: the libraries' own code builds each envelope, captured where it would be
posted (there is no server in these tests; tests/test_push_pipeline.py sends them to the
lab). Their MessageIDs are random, so both sides get the same one.
"""

from __future__ import annotations

import os
import re
import uuid
from typing import Any

import pytest
import spnego
from pypsrp.shell import WinRS
from pypsrp.wsman import SelectorSet, WSMan
from winrm.protocol import Protocol

from pushinstall.lab.wsman.auth import write_user_file
from pushinstall.transports.sealed_sends import PypsrpStdin, PywinrmStdin, seals_apart

COMMAND = "AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE"
SHELL = "11111111-2222-3333-4444-555555555555"
FIXED = uuid.UUID("12345678-1234-5678-1234-567812345678")


@pytest.fixture
def fixed_uuid(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every MessageID the libraries make is the same one."""
    monkeypatch.setattr(uuid, "uuid4", lambda: FIXED)


def _wsman_shell() -> tuple[WSMan, WinRS]:
    wsman = WSMan("127.0.0.1", username="u", password="p", ssl=True, auth="basic",
                  cert_validation=False)
    shell = WinRS(wsman)
    shell.id = SHELL
    shell._selector_set = SelectorSet()
    shell._selector_set.add_option("ShellId", SHELL)
    return wsman, shell


@pytest.mark.parametrize("size", [0, 1, 360 * 1024])
@pytest.mark.parametrize("end", [False, True])
def test_the_pypsrp_send_is_byte_for_byte_pypsrps_own(fixed_uuid: None, size: int,
                                                       end: bool) -> None:
    data = os.urandom(size)
    wsman, shell = _wsman_shell()
    sent: list[bytes] = []
    relates = f"<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope' xmlns:wsa=" \
        f"'http://schemas.xmlsoap.org/ws/2004/08/addressing'><s:Header><wsa:RelatesTo>" \
        f"uuid:{str(FIXED).upper()}</wsa:RelatesTo></s:Header><s:Body/></s:Envelope>".encode()

    def capture(xml: bytes, **_: Any) -> bytes:
        sent.append(xml)
        return relates
    wsman.transport.send = capture  # type: ignore[method-assign]
    shell.send("stdin", data, command_id=COMMAND, end=end)
    sealed = PypsrpStdin(wsman, shell, COMMAND).seal(data, end)
    assert sealed.message == sent[0]
    assert not sealed.spent     # over HTTPS nothing is encrypted
    PypsrpStdin(wsman, shell, COMMAND).post(sealed)   # the library's send, RelatesTo checked
    assert sent[1] == sealed.message


@pytest.mark.parametrize("size", [0, 1, 360 * 1024])
@pytest.mark.parametrize("end", [False, True])
def test_the_pywinrm_send_is_byte_for_byte_pywinrms_own(fixed_uuid: None, size: int,
                                                         end: bool) -> None:
    data = os.urandom(size)
    protocol = Protocol("https://127.0.0.1:1/wsman", username="u", password="p",
                        transport="basic", server_cert_validation="ignore")
    sent: list[Any] = []
    own = protocol.send_message
    protocol.send_message = sent.append  # type: ignore[method-assign]
    protocol.send_command_input(SHELL, COMMAND, data, end=end)
    sealed = PywinrmStdin(protocol, SHELL, COMMAND).seal(data, end)
    assert sealed.message == str(sent[0]).encode("utf-8")
    assert not sealed.spent     # over HTTPS nothing is encrypted
    assert re.search(rb'End="(true|false)"', sealed.message)
    protocol.send_message = own  # type: ignore[method-assign]


def _ntlm_pair(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    monkeypatch.setenv("NTLM_USER_FILE", str(write_user_file(tmp_path / "users", "LAB\\u",
                                                             "p4ss")))
    client = spnego.client("LAB\\u", "p4ss", protocol="negotiate",
                           options=spnego.NegotiateOptions.wrapping_winrm)
    server = spnego.server(protocol="negotiate")
    token = client.step()
    while not client.complete:
        token = client.step(server.step(token))
    if not server.complete:
        server.step(token)
    return client, server


def test_ntlm_with_extended_session_security_seals_apart_and_nothing_else_does(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    client, server = _ntlm_pair(tmp_path, monkeypatch)
    assert client.negotiated_protocol == "ntlm"
    assert seals_apart(client) and seals_apart(server)
    # sealing the next message ahead does not disturb opening the answer to this one
    first, second = client.wrap_winrm(b"one"), client.wrap_winrm(b"two")
    answer = server.wrap_winrm(b"answer to one")
    assert client.unwrap_winrm(answer.header, answer.data) == b"answer to one"
    assert server.unwrap_winrm(first.header, first.data) == b"one"
    assert server.unwrap_winrm(second.header, second.data) == b"two"
    assert not seals_apart(None) and not seals_apart(object())
