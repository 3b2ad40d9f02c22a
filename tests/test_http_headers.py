"""The psrp transport's plain-HTTP connections read an answer's headers without the email
parser (`transports/http_headers.py`): each message is held to the one the standard library's
`http.client.parse_headers` makes, attribute by attribute and defect by defect, on the lab's
real answers (a check over loopback, real pypsrp, requests, urllib3 and pyspnego) and on
hostile header blocks, which the email parser reads as before.
"""

from __future__ import annotations

import http.client
import io

import pytest
import requests
from kit import OS_FACTS, Wire
from urllib3.util.response import assert_header_parsing

from pushinstall.transports import http_headers
from pushinstall.transports.psrp import PSRPTransport


def _as_data(message: http.client.HTTPMessage) -> dict[str, object]:
    seen: dict[str, object] = dict(vars(message))
    seen["defects"] = [(type(d), vars(d), d.args) for d in message.defects]
    return seen


def _both(block: bytes) -> tuple[dict[str, object], dict[str, object], bool]:
    """(ours, the standard library's, whether ours read it without the email parser)."""
    ours = http_headers.parse_headers(io.BytesIO(block + b"body"))
    theirs = http.client.parse_headers(io.BytesIO(block + b"body"))
    plain = http_headers._plain(io.BytesIO(block).readlines(), http.client.HTTPMessage)
    return _as_data(ours), _as_data(theirs), plain is not None


def test_the_lab_answers_read_as_the_standard_library_reads_them(
        wire: Wire, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks: list[bytes] = []
    read = http_headers._read_headers_of

    def recorded(fp: object) -> list[bytes]:
        lines = read(fp)
        blocks.append(b"".join(lines))
        return lines

    monkeypatch.setattr(http_headers, "_read_headers_of", recorded)
    wire.serve("hh1")
    transport = PSRPTransport(wire.host("hh1"))
    transport.open()
    try:
        assert transport.call(OS_FACTS)["ok"] is True
        assert transport._wsman is not None
        http = transport._wsman.transport
        assert http.session is not None
        session = http.session
        pool = session.get_adapter(http.endpoint).get_connection_with_tls_context(
            requests.Request("POST", http.endpoint).prepare(), session.verify,
            session.proxies, session.cert)
        connections = [c for c in pool.pool.queue if c is not None]
        assert connections and all(c.response_class is http_headers.LeanResponse
                                   for c in connections)
    finally:
        transport.close()
    monkeypatch.undo()   # what follows reads them again
    assert len(blocks) == 7   # every answer of a check, the 401 and the sealed ones
    assert any(b"WWW-Authenticate" in b for b in blocks)
    assert sum(b"multipart/encrypted" in b for b in blocks) >= 5
    for block in blocks:
        ours, theirs, plain = _both(block)
        assert ours == theirs and plain
        # urllib3's own check takes ours as it takes the library's
        assert_header_parsing(http_headers.parse_headers(io.BytesIO(block)))


@pytest.mark.parametrize(("block", "plain"), [
    (b"Content-Type: multipart/encrypted;protocol=\"application/HTTP-SPNEGO-session-encrypted"
     b"\";boundary=\"Encrypted Boundary\"\r\nContent-Length: 12\r\n\r\n", True),
    (b"Content-Type: multipart/mixed\r\n\r\n", True),                # no boundary
    (b"Content-Type: multipart/x; boundary=\"\"\r\n\r\n", True),     # an empty one
    (b"\r\n", True),                                                  # no header at all
    (b"X:  a  b \t \r\nY:\r\nx-y_z!#: :v:\r\n\r\n", True),          # blanks, colons
    (b"Set-Cookie: a\r\nset-cookie: b\r\n\r\n", True),                # the same name twice
    (b"X: a\r\n b\r\n\r\n", False),                                   # folded
    (b"X: a\r\n\tb\r\n\r\n", False),
    (b"From nobody\r\n\r\n", False),                                  # Unix-from
    (b"X: caf\xe9\r\n\r\n", False),                                   # not ASCII
    (b"X: a\n\n", False),                                             # bare LF
    (b"X: a\r\n\n", False),
    (b"X: a\r\n", False),                                             # no blank line
    (b"Bad Name: x\r\n\r\n", False),
    (b":x\r\n\r\n", False),
    (b"NoColon\r\n\r\n", False),
    (b"X\x00: a\r\n\r\n", False),
    (b"X: a\rb\r\n\r\n", False),
    (b"Content-Type: text/plain\r\ncontent-type: multipart/x\r\n\r\n", False),
])
def test_a_header_block_reads_as_the_standard_library_reads_it(block: bytes,
                                                              plain: bool) -> None:
    ours, theirs, read_plainly = _both(block)
    assert ours == theirs
    assert read_plainly is plain


def test_the_answer_begins_with_the_standard_library_code() -> None:
    assert http_headers.LeanResponse.begin.__code__ is http.client.HTTPResponse.begin.__code__
    assert http_headers.LeanResponse.begin.__globals__["parse_headers"] is \
        http_headers.parse_headers
