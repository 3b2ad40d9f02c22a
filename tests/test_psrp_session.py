"""pypsrp as the psrp transport uses it (`transports/psrp_session.py`): the NTLM keys derived
once per account, no proxy look-ups per request, pipelines serialized without copies, requests
prepared the short way and their pool found once, the envelope room computed once, answers'
primitives read directly: each held to what pypsrp or requests would have made. Against the
lab's WS-Man endpoint on real loopback sockets, real pypsrp, requests and pyspnego; nothing
mocked.
"""

from __future__ import annotations

import contextlib
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import spnego
from kit import OS_FACTS, PASSWORD, Wire
from pypsrp.complex_objects import Command, CommandParameter, Pipeline
from pypsrp.serializer import Serializer
from pypsrp.wsman import WSMan
from spnego._ntlm import _NTLMCredential

from pushinstall.errors import AuthenticationFailed
from pushinstall.transports import psrp_session
from pushinstall.transports.psrp import PSRPTransport


def test_the_hashes_are_the_ones_pyspnego_derives_from_the_password() -> None:
    derived = _NTLMCredential(spnego.Password(username="LAB\\admin", password=PASSWORD))
    hashed, password = psrp_session.ntlm_credentials("LAB\\admin", PASSWORD)
    given = _NTLMCredential(hashed)
    assert (given.lm_hash, given.nt_hash) == (derived.lm_hash, derived.nt_hash)
    assert (given.domain, given.username) == ("LAB", "admin")
    assert isinstance(password, spnego.Password)   # for Kerberos under Negotiate
    assert psrp_session.ntlm_credentials("LAB\\admin", PASSWORD)[0] is hashed   # once


@pytest.mark.parametrize("auth", ["ntlm", "negotiate"])
def test_a_session_authenticates_with_the_hashes_and_reads_no_proxy_settings(
        wire: Wire, auth: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # the environment's proxy stays unused (pypsrp is told no_proxy), now without a look-up
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.9:1")
    monkeypatch.setenv("NO_PROXY", "")
    wire.serve("h1")
    transport = PSRPTransport(wire.host("h1", auth=auth))
    transport.open()
    try:
        assert transport.call(OS_FACTS)["ok"] is True
        session = transport._session()
        assert session is not None and session.trust_env is False
        assert session.auth.password is None                      # type: ignore[union-attr]
        assert isinstance(session.auth.username, list)            # type: ignore[union-attr]
    finally:
        transport.close()


def test_a_wrong_password_still_fails_with_the_hashes(wire: Wire) -> None:
    wire.serve("h2")
    with pytest.raises(AuthenticationFailed):
        PSRPTransport(wire.host("h2", password="not-the-password")).open()


@pytest.mark.parametrize("statements", [1, 3])
def test_a_pipeline_serializes_the_same_without_the_copies(statements: int) -> None:
    def pipeline(kind: type[Pipeline]) -> bytes:
        commands = []
        for index in range(statements):
            command = Command(cmd=f"Get-Thing{index}", is_script=False)
            command.args.append(CommandParameter(name="Request", value=f"r{index}"))
            command.args.append(CommandParameter(name="Agent", value=b"\x00\x01" * 8))
            command.end_of_statement = True
            commands.append(command)
        serialized = Serializer().serialize(kind(is_nested=False, cmds=commands, history="",
                                                 redirect_err_to_out=False))
        assert serialized is not None
        return ET.tostring(serialized)

    assert pipeline(psrp_session._Statements) == pipeline(Pipeline)


def test_the_first_token_goes_with_the_first_request_over_http(wire: Wire) -> None:
    wire.serve("h4")
    transport = PSRPTransport(wire.host("h4"))
    transport.open()
    try:
        # the token with the first request (401: the challenge), the answer (200), then the
        # runspace pool's Create and the Receive of its state: no bare request before
        assert wire.endpoint.counters("h4").requests == 4
        session = transport._session()
        assert isinstance(session.auth, psrp_session.EagerNegotiateAuth)  # type: ignore[union-attr]
    finally:
        transport.close()


def test_over_https_the_first_request_goes_bare_for_channel_binding() -> None:
    auth = psrp_session.EagerNegotiateAuth(username="admin", password=PASSWORD,
                                           auth_provider="ntlm")
    bare = auth(requests.Request("POST", "https://127.0.0.1:5986/wsman").prepare())
    assert "Authorization" not in bare.headers and not auth.contexts
    eager = auth(requests.Request("POST", "http://127.0.0.1:5985/wsman").prepare())
    assert eager.headers["Authorization"].startswith(b"Negotiate TlRMTVNTUAAB")  # NTLM type 1


@pytest.mark.parametrize("endpoint", ["127.0.0.1", "127.0.0.2", "a-much-longer-host-name.test",
                                      "h&s<x>.test"])
@pytest.mark.parametrize(("envelope", "timeout"), [(153600, 20), (512000, 5), (8192, 3600)])
def test_the_room_for_a_payload_is_what_pypsrp_computes(endpoint: str, envelope: int,
                                                        timeout: int) -> None:
    def made(kind: type[WSMan], port: int = 5985) -> WSMan:
        return kind(endpoint, port=port, ssl=False, auth="ntlm", username="u",
                    password="p", max_envelope_size=envelope, operation_timeout=timeout)

    ours, theirs = made(psrp_session.WSMan), made(WSMan)
    assert ours.max_payload_size == theirs.max_payload_size
    # the server's capability: a new size, computed against the header of the old one
    ours.update_max_payload_size(envelope * 2)
    theirs.update_max_payload_size(envelope * 2)
    assert ours.max_payload_size == theirs.max_payload_size
    # and the cache answers for the next connection to an endpoint of that length, in
    # another port too
    assert made(psrp_session.WSMan).max_payload_size == made(WSMan).max_payload_size
    assert len(psrp_session._ENVELOPE_ROOM) >= 2
    for port in (5986, 80, 10042):
        assert made(psrp_session.WSMan, port).max_payload_size == made(WSMan, port).max_payload_size


def _values() -> list[object]:
    """One value of every primitive pypsrp serializes, strings with what it escapes."""
    return ["plain", "", "line\nbreak_x000A_ and _X and \u00e9 \U0001f600 \x00\x1f",
            True, False, 0, -5, 2 ** 40, 1.5, b"\x00\x01\xff", uuid.UUID(int=7), None]


@pytest.mark.parametrize("value", _values())
def test_a_primitive_reads_as_pypsrp_reads_it(value: object) -> None:
    element = Serializer().serialize(value)
    assert element is not None
    text = ET.tostring(element, encoding="unicode")
    ours, theirs = psrp_session.Serializer(), Serializer()
    assert ours.deserialize(ET.fromstring(text)) == theirs.deserialize(ET.fromstring(text))


@pytest.mark.parametrize("tag", sorted(psrp_session._PRIMITIVES.keys() - {"SS", "Ref"}))
def test_every_primitive_tag_reads_as_pypsrp_reads_it(tag: str) -> None:
    # text each tag's reader takes (pypsrp's table: serializer.py, Serializer.deserialize)
    text = {"C": "65", "B": "True", "BA": "AAH/", "G": str(uuid.UUID(int=9)), "Sg": "0.25",
            "Db": "-2.5", "Nil": ""}.get(tag, "12" if tag[-2:].isdigit() or tag in ("By", "SB")
                                      else "a_x000D__x000A_b")
    element = f"<{tag}>{text}</{tag}>"
    ours = psrp_session.Serializer().deserialize(ET.fromstring(element))
    assert ours == Serializer().deserialize(ET.fromstring(element))
    # a tag pypsrp does not read as a primitive would not be in the table: its answer is
    # the element's own XML text, never a value read from it
    assert ours != element


def test_an_answer_with_references_and_objects_reads_as_pypsrp_reads_it() -> None:
    # a list of a hashtable and a string, with a type-name reference: objects keep their XML
    value = ET.fromstring(
        '<Obj RefId="0"><TN RefId="0"><T>System.Collections.ArrayList</T><T>System.Object</T>'
        '</TN><LST><Obj RefId="1"><TN RefId="1"><T>System.Collections.Hashtable</T>'
        '<T>System.Object</T></TN><DCT><En><S N="Key">k_x000A_</S>'
        '<I32 N="Value">3</I32></En></DCT></Obj><S>tail</S><Ref RefId="1" />'
        '<Obj RefId="2"><TNRef RefId="1" /><DCT /></Obj></LST></Obj>')
    ours = psrp_session.Serializer().deserialize(value)
    theirs = Serializer().deserialize(value)
    assert ours == theirs and ours[0] == {"k\n": 3} and ours[2] is ours[0] and ours[3] == {}


@contextlib.contextmanager
def _answered(wire: Wire, name: str) -> Iterator[PSRPTransport]:
    """A transport to lab host `name`, open, that has answered a call; closed after."""
    wire.serve(name)
    transport = PSRPTransport(wire.host(name))
    transport.open()
    try:
        assert transport.call(OS_FACTS)["ok"] is True
        yield transport
    finally:
        transport.close()


def test_the_pool_reads_its_messages_through_the_cheaper_serializer(wire: Wire) -> None:
    with _answered(wire, "h5") as transport:
        pool = transport._pool
        assert pool is not None and type(pool._serializer) is psrp_session.Serializer
        assert pool._fragmenter.serializer is pool._serializer


def _prepared(session: requests.Session, request: requests.Request) -> tuple[object, ...]:
    prepared = session.prepare_request(request)
    hooks = {name: list(hook) for name, hook in prepared.hooks.items()}
    return (prepared.method, prepared.url, list(prepared.headers.items()), prepared.body,
            hooks, [(c.name, c.value) for c in prepared._cookies or []])  # type: ignore[attr-defined]


def _sessions() -> tuple[requests.Session, requests.Session]:
    def response_hook(response: object, **kwargs: object) -> object:
        return response

    sessions = []
    for kind in (requests.Session, psrp_session.LeanSession):
        session = kind()
        session.trust_env = False
        session.headers["User-Agent"] = "Python PSRP Client"
        session.headers["Accept-Encoding"] = "identity"
        session.auth = requests.auth.HTTPBasicAuth("u", "p")
        session.hooks["response"].append(response_hook)
        sessions.append(session)
    return sessions[0], sessions[1]


@pytest.mark.parametrize("data", [None, b"", b"<s:Envelope/>" * 40])
@pytest.mark.parametrize("extra", [{}, {"Content-Type": "application/soap+xml;charset=UTF-8"},
                                   {"Accept-Encoding": None, "content-length": "12"}])
def test_a_request_is_prepared_as_requests_prepares_it(data: bytes | None,
                                                       extra: dict[str, str | None]) -> None:
    theirs, ours = _sessions()
    url = "http://127.0.0.1:5985/wsman"
    for _ in range(2):   # the second time from the parsed URL kept
        def request() -> requests.Request:
            return requests.Request("POST", url, data=data,
                                    headers={**theirs.headers, **extra})
        assert _prepared(ours, request()) == _prepared(theirs, request())
    assert ours._urls == {url: url}


def test_a_session_holding_a_cookie_prepares_the_general_way() -> None:
    theirs, ours = _sessions()
    for session in (theirs, ours):
        session.cookies.set("lb", "7", domain="127.0.0.1", path="/")
    request = requests.Request("POST", "http://127.0.0.1:5985/wsman", data=b"x")
    prepared = _prepared(ours, request)
    assert prepared == _prepared(theirs, request)
    assert ("Cookie", "lb=7") in prepared[2]   # type: ignore[operator]


def test_the_pool_of_a_url_is_found_once_until_it_is_closed(wire: Wire) -> None:
    with _answered(wire, "h6") as transport:
        session = transport._session()
        assert type(session) is psrp_session.LeanSession
        adapter = session.get_adapter("http://127.0.0.1/")
        assert transport._wsman is not None
        request = requests.Request("POST", transport._wsman.transport.endpoint).prepare()
        first = adapter.get_connection_with_tls_context(request, session.verify,
                                                        session.proxies, session.cert)
        assert adapter.get_connection_with_tls_context(request, session.verify,
                                                       session.proxies, session.cert) is first
        assert first.num_requests >= 1   # the pool the transport's requests went through
        adapter.close()
        again = adapter.get_connection_with_tls_context(request, session.verify,
                                                        session.proxies, session.cert)
        assert again is not first and again.pool is not None
        # another URL: its own pool, and the first one's is still the one requests finds
        other = requests.Request("POST", "http://127.0.0.2:1/wsman").prepare()
        assert adapter.get_connection_with_tls_context(other, session.verify, session.proxies,
                                                       session.cert) is not again
        assert adapter.get_connection_with_tls_context(request, session.verify,
                                                       session.proxies, session.cert) is again


def _shape(value: object) -> object:
    """`value` as plain data, its objects by type and attributes: two reads compared whole."""
    if isinstance(value, dict):
        return {_shape(k): _shape(v) for k, v in value.items()}   # type: ignore[misc]
    if isinstance(value, list | tuple):
        return [_shape(v) for v in value]
    if hasattr(value, "__dict__"):
        return (type(value).__name__, {k: _shape(v) for k, v in vars(value).items()})
    return value


def _read(serializer: Serializer, text: str) -> object:
    from pypsrp.messages import ApplicationPrivateData
    from pypsrp.serializer import ObjectMeta
    return serializer.deserialize(text, ObjectMeta("Obj", object=ApplicationPrivateData))


def test_the_pool_private_data_is_read_once_and_copied_as_pypsrp_reads_it(
        wire: Wire, monkeypatch: pytest.MonkeyPatch) -> None:
    with _answered(wire, "h6") as first, _answered(wire, "h7") as second:
        assert first._pool is not None and second._pool is not None
        mine, theirs = (first._pool.application_private_data,
                        second._pool.application_private_data)
    texts = [text for kind, text in psrp_session._READ_ONCE.read
             if kind.__name__ == "ApplicationPrivateData"]
    assert texts and "PSVersionTable" in texts[0]   # the lab's answer, kept
    fresh = _read(Serializer(), texts[0])           # pypsrp's own reading
    assert _shape(mine) == _shape(theirs) == _shape(fresh)
    assert "PSVersionTable" in str(_shape(fresh))   # read whole, not as the raw text
    assert mine is not theirs   # each pool its own copy: changing one changes no other
    assert mine.data is not theirs.data  # type: ignore[union-attr]
    reads: list[str] = []       # pypsrp's own reading of a whole message text
    real = psrp_session._Serializer.deserialize

    def counted(self: Any, element: Any, metadata: Any = None, clear: bool = True) -> Any:
        if isinstance(element, str):
            reads.append(element)
        return real(self, element, metadata, clear)

    monkeypatch.setattr(psrp_session._Serializer, "deserialize", counted)
    again = _read(psrp_session.Serializer(), texts[0])
    assert _shape(again) == _shape(fresh) and again is not mine
    assert reads == []                                  # a copy, not a read
    _read(psrp_session.Serializer(), texts[0] + " ")    # a text not seen: read
    assert reads == [texts[0] + " "]


@pytest.mark.parametrize("text", [
    # another version's answer, with a type-name reference and a nested table
    '<Obj RefId="0"><MS><Obj RefId="1" N="ApplicationPrivateData"><TN RefId="0">'
    '<T>System.Management.Automation.PSPrimitiveDictionary</T><T>System.Collections.Hashtable'
    '</T><T>System.Object</T></TN><DCT><En><S N="Key">PSVersionTable</S><Obj RefId="2" '
    'N="Value"><TNRef RefId="0" /><DCT><En><S N="Key">PSVersion</S><Version N="Value">5.1'
    '</Version></En><En><S N="Key">x_x000A_</S><Nil N="Value" /></En></DCT></Obj></En></DCT>'
    '</Obj></MS></Obj>',
    '<Obj RefId="0"><MS><Nil N="ApplicationPrivateData" /></MS></Obj>',   # none at all
    '<Obj RefId="0"><MS>',                                  # not XML: pypsrp keeps the text
])
def test_a_private_data_read_twice_reads_as_pypsrp_reads_it(text: str) -> None:
    fresh = _read(Serializer(), text)
    ours = psrp_session.Serializer()
    first, second = _read(ours, text), _read(ours, text)
    assert _shape(first) == _shape(second) == _shape(fresh)
    if not isinstance(fresh, str):
        assert first is not second


def test_a_long_or_other_message_is_not_kept() -> None:
    from pypsrp.messages import ApplicationPrivateData, SessionCapability
    from pypsrp.serializer import ObjectMeta

    long = ('<Obj RefId="0"><MS><Obj RefId="1" N="ApplicationPrivateData"><DCT><En>'
            f'<S N="Key">k</S><S N="Value">{"v" * psrp_session.READ_ONCE_LENGTH}</S></En>'
            '</DCT></Obj></MS></Obj>')
    capability = ('<Obj RefId="0"><MS><Version N="PSVersion">2.0</Version><Version '
                  'N="protocolversion">2.3</Version><Version N="SerializationVersion">1.1.0.1'
                  '</Version></MS></Obj>')
    ours = psrp_session.Serializer()
    assert _shape(_read(ours, long)) == _shape(_read(Serializer(), long))
    meta = ObjectMeta("Obj", object=SessionCapability)
    assert _shape(ours.deserialize(capability, meta)) == _shape(
        Serializer().deserialize(capability, ObjectMeta("Obj", object=SessionCapability)))
    kept = {text for _, text in psrp_session._READ_ONCE.read}
    assert long not in kept and capability not in kept
    assert all(kind is ApplicationPrivateData for kind, _ in psrp_session._READ_ONCE.read)
