"""Each WS-Man request's envelope is written from a template (`transports/wsman_envelope.py`):
held here, byte for byte, to the envelope pypsrp's own `WSMan.invoke` hands its transport for
the same request (the MessageID and SessionId made the same), for every request a psrp
session sends and for hostile values (data, never markup). pypsrp's real request methods
build the bodies; only the transport's `send` is replaced, by one that records the bytes
(no network is needed to compare them).
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest
from pypsrp.powershell import RunspacePool
from pypsrp.shell import WinRS
from pypsrp.wsman import NAMESPACES, OptionSet, SelectorSet, WSMan, WSManAction

from pushinstall.transports import psrp_session, wsman_envelope

HOSTILE = 'a"b\'c<d>e&f\r\n\tg]]><!-- \u00e9\U0001f600 </s:Body>'
PWSH = "http://schemas.microsoft.com/powershell/Microsoft.PowerShell"
RSP = NAMESPACES["rsp"]


class _Sent(Exception):
    pass


def _recorded(kind: type[WSMan], request: Callable[[WSMan], object], endpoint: str,
              monkeypatch: pytest.MonkeyPatch, **settings: object) -> bytes:
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=0xFEED))   # the MessageID
    wsman = kind(endpoint, port=5985, ssl=False, auth="ntlm", username="u", password="p",
                 **settings)  # type: ignore[arg-type]
    wsman.session_id = str(uuid.UUID(int=0xBEEF))
    sent: list[bytes] = []

    def send(message: bytes, **kwargs: object) -> bytes:
        sent.append(message)
        raise _Sent

    wsman.transport.send = send  # type: ignore[method-assign]
    with pytest.raises(_Sent):
        request(wsman)
    assert len(sent) == 1
    return sent[0]


def _shell(wsman: WSMan) -> WinRS:
    shell = WinRS(wsman, codepage=65001, no_profile=True, environment={"K": HOSTILE})
    shell.id = "SHELL-" + HOSTILE
    return shell


def _selectors(value: str = "ABC") -> SelectorSet:
    selectors = SelectorSet()
    selectors.add_option("ShellId", value)
    return selectors


def _body(tag: str, **attributes: str) -> ET.Element:
    element = ET.Element(f"{{{RSP}}}{tag}", **attributes)
    child = ET.SubElement(element, f"{{{RSP}}}Stream", Name="stdin", CommandId=HOSTILE)
    child.text = HOSTILE
    child.tail = "tail & <more>"
    ET.SubElement(element, f"{{{RSP}}}Empty")
    ET.SubElement(element, f"{{{RSP}}}EmptyText").text = ""
    return element


REQUESTS: dict[str, Callable[[WSMan], object]] = {
    "pool open (Create, creationXml, options)":
        lambda w: RunspacePool(w, min_runspaces=1, max_runspaces=1).open(),
    "cmd shell open": lambda w: WinRS(w, codepage=65001, no_profile=True).open(),
    "shell open with hostile environment": lambda w: _shell(w).open(),
    "command": lambda w: _shell(w).command("receiver.exe", ["-x", HOSTILE]),
    "receive": lambda w: w.receive(PWSH, _body("Receive"), selector_set=_selectors(), timeout=5),
    "send": lambda w: _shell(w).send("stdin", b"\x00\xff" * 100, end=True,
                                     command_id=str(uuid.UUID(int=3))),
    "signal": lambda w: _shell(w).signal("powershell/signal/crtl_c", str(uuid.UUID(int=4))),
    "delete (no body)": lambda w: w.delete(PWSH, selector_set=_selectors(HOSTILE)),
    "hostile option": lambda w: w.invoke(WSManAction.CREATE, PWSH, _body("Shell", Id=HOSTILE),
                                         option_set=_options(), selector_set=_selectors()),
}


def _options() -> OptionSet:
    options = OptionSet()
    options.add_option("protocolversion", "2.3", {"MustComply": "true", "Extra": HOSTILE})
    options.add_option("WINRS_" + "X", HOSTILE)
    return options


@pytest.mark.parametrize("endpoint", ["127.0.0.1", "h&s<x>.test"])
@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_an_envelope_is_pypsrp_s_bytes(name: str, endpoint: str,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    request = REQUESTS[name]
    ours = _recorded(psrp_session.WSMan, request, endpoint, monkeypatch)
    theirs = _recorded(WSMan, request, endpoint, monkeypatch)
    assert ours == theirs
    ET.fromstring(ours)   # well formed, and nothing injected
    assert b"</s:Body><!--" not in ours


@pytest.mark.parametrize(("settings", "timeout"), [({}, None), ({"locale": HOSTILE,
                         "data_locale": "de-DE", "operation_timeout": 7}, 3)])
def test_the_header_settings_are_written_as_pypsrp_writes_them(
        settings: dict[str, object], timeout: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    def request(w: WSMan) -> object:
        return w.invoke(WSManAction.RECEIVE, PWSH, None, timeout=timeout)

    ours = _recorded(psrp_session.WSMan, request, "127.0.0.1", monkeypatch, **settings)
    assert ours == _recorded(WSMan, request, "127.0.0.1", monkeypatch, **settings)


def test_a_namespace_without_a_prefix_is_left_to_pypsrp(monkeypatch: pytest.MonkeyPatch) -> None:
    body = ET.Element("{urn:unknown}Thing")
    assert wsman_envelope.envelope(WSMan("127.0.0.1", ssl=False, auth="ntlm", username="u",
                                         password="p"), WSManAction.GET, PWSH, body) is None

    def request(w: WSMan) -> object:
        return w.invoke(WSManAction.GET, PWSH, ET.Element("{urn:unknown}Thing"))

    ours = _recorded(psrp_session.WSMan, request, "127.0.0.1", monkeypatch)
    assert ours == _recorded(WSMan, request, "127.0.0.1", monkeypatch)
    assert b" xmlns:ns" in ours   # a prefix ElementTree made up: pypsrp wrote it
