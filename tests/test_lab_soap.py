"""The lab's reading of a request body: the encrypted multipart is split without the regex
engine or copies (`lab/wsman/auth.py`), and a Send's ~500 KB stream text is lifted out before
expat parses the envelope (`lab/wsman/soap.py`); each gives what the plain way gives.

Nothing is mocked: the envelopes are the ones pypsrp and pywinrm build for a Send (their own
code, capturing the message instead of posting it: there is no server in these tests), and
hand-made ones for the edges; each is compared with `ET.fromstring` of the same bytes.
"""

from __future__ import annotations

import base64
import os
import random
import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from pypsrp.shell import WinRS
from pypsrp.wsman import WSMan
from winrm.protocol import Protocol

from pushinstall.lab.wsman import auth, soap

BLOCK = base64.b64encode(os.urandom(360 * 1024)).decode("ascii")
SMALL = BLOCK[:70_000]     # above soap.LIFT


def _pypsrp_send(data: bytes) -> bytes:
    """The envelope pypsrp posts for one Send of `data` to a command's stdin."""
    wsman = WSMan("127.0.0.1", username="u", password="p", ssl=False, auth="basic",
                  encryption="never")
    sent: list[bytes] = []
    wsman.transport.send = lambda xml, **_: sent.append(xml) or _relates(xml)  # type: ignore
    shell = WinRS(wsman)
    shell.id = "11111111-2222-3333-4444-555555555555"
    shell.send("stdin", data, command_id="AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE", end=False)
    return sent[0]


def _relates(xml: bytes) -> bytes:
    """A response that pypsrp's invoke accepts: RelatesTo is the request's MessageID."""
    message_id = ET.fromstring(xml).findtext("s:Header/wsa:MessageID", "", soap.NS)
    return (f'<s:Envelope xmlns:s="{soap.NS["s"]}" xmlns:wsa="{soap.NS["wsa"]}"><s:Header>'
            f"<wsa:RelatesTo>{message_id}</wsa:RelatesTo></s:Header><s:Body/></s:Envelope>"
            ).encode()


def _pywinrm_send(data: bytes) -> bytes:
    """The envelope pywinrm posts for one Send of `data` to a command's stdin."""
    protocol = Protocol("http://127.0.0.1:1/wsman", username="u", password="p",
                        transport="basic")
    sent: list[Any] = []
    protocol.send_message = sent.append  # type: ignore[method-assign]
    protocol.send_command_input("SHELL", "COMMAND", data, end=True)
    return str(sent[0]).encode("utf-8")


def _doc(inner: str) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{soap.NS["s"]}" '
            f'xmlns:rsp="{soap.NS["rsp"]}"><s:Header><a x="1>2">t</a></s:Header><s:Body>'
            f"<rsp:Send>{inner}</rsp:Send></s:Body></s:Envelope>").encode()


def _tree(data: bytes) -> bytes | str:
    try:
        return ET.tostring(soap._parsed(data))
    except ET.ParseError:
        return "ParseError"


def _expat(data: bytes) -> bytes | str:
    try:
        return ET.tostring(ET.fromstring(data))
    except ET.ParseError:
        return "ParseError"


@pytest.fixture
def parsed_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every document expat is handed from now on."""
    sizes: list[int] = []
    real = ET.fromstring

    def recording(text: Any, parser: Any = None) -> ET.Element:
        sizes.append(len(text))
        return real(text, parser)
    monkeypatch.setattr(soap.ET, "fromstring", recording)
    return sizes


@pytest.mark.parametrize("build", [_pypsrp_send, _pywinrm_send], ids=["pypsrp", "pywinrm"])
def test_a_clients_send_reads_as_expat_reads_it_without_expat_reading_the_stream(
        build: Any, parsed_sizes: list[int]) -> None:
    data = os.urandom(360 * 1024)
    envelope = build(data)
    want = _expat(envelope)
    parsed_sizes.clear()
    assert _tree(envelope) == want
    assert parsed_sizes and max(parsed_sizes) < 4096   # the stream went round expat
    request = soap.parse_request(envelope)
    stream = request.body.find("rsp:Send/rsp:Stream", soap.NS)
    assert stream is not None and base64.b64decode(stream.text or "") == data
    assert request.verb == "Send" and request.message_id.startswith("uuid:")


@pytest.mark.parametrize("inner", [
    f'<rsp:Stream Name="a">{BLOCK}</rsp:Stream><rsp:Stream Name="b">{SMALL}</rsp:Stream>',
    f"<e/>{SMALL}<f>{SMALL}&amp;</f><g x=\"&gt;{SMALL}\"/>",      # tail, entity, attribute
    f"<rsp:Stream>{SMALL}\r\n{SMALL}</rsp:Stream>",                 # CR LF is normalized
    f"<a>{{lifted:0}}</a><b>{BLOCK}</b>",                           # a token's own text
    f"<a>{SMALL}]]>{SMALL}</a>",                                    # not well-formed
    f"<a>{SMALL}\x01</a>",                                          # a control character
    f"<a>{BLOCK}<!-- c --></a>",
    f"<!-- <a>{BLOCK}</a> --><b>{BLOCK}</b>",
    f"<a><![CDATA[<b>{BLOCK}</b>]]></a>",
    f"<a>{BLOCK}</b>",                                              # mismatched tags
    f"<a>{SMALL[:100]}</a>",                                        # too short to lift
], ids=["two-streams", "tail-entity-attribute", "crlf", "token-text", "cdata-end",
        "control", "comment-after", "comment-around", "cdata", "mismatched", "short"])
def test_any_document_reads_as_expat_reads_it(inner: str) -> None:
    data = _doc(inner)
    assert _tree(data) == _expat(data)


def test_a_lifted_send_that_is_not_xml_is_still_refused() -> None:
    with pytest.raises(ValueError, match="not XML"):
        soap.parse_request(_doc(f"<rsp:Stream>{BLOCK}</rsp:Strea>"))


def test_the_encrypted_multipart_splits_as_the_regex_splits_it() -> None:
    boundary = auth.BOUNDARY
    pattern = re.escape(boundary) + rb"(?:--)?\r\n"
    pieces = [boundary + b"\r\n", boundary + b"--\r\n", boundary, boundary + b"--",
              b"\r\n", b"--", b"x", b"\x00\xff", boundary[:5], auth._OCTET_STREAM]
    chance = random.Random(12)
    for _ in range(5000):
        body = b"".join(chance.choice(pieces) for _ in range(chance.randint(0, 8)))
        assert [bytes(part) for part in auth._parts(body)] == \
            [part for part in re.split(pattern, body) if part], body
        for data in (auth._OCTET_STREAM + body, body, body + auth._OCTET_STREAM + body):
            cut = auth._without_first(memoryview(data), auth._OCTET_STREAM)
            assert bytes(cut) == data.replace(auth._OCTET_STREAM, b"", 1)
