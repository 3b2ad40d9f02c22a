"""pypsrp as the psrp transport uses it (`transports/psrp_session.py`): the NTLM keys derived
once per account, no proxy look-ups per request, pipelines serialized without copies. Against
the lab's WS-Man endpoint on real loopback sockets, real pypsrp and pyspnego; nothing mocked.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import requests
import spnego
from kit import OS_FACTS, PASSWORD, Wire
from pypsrp.complex_objects import Command, CommandParameter, Pipeline
from pypsrp.serializer import Serializer
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
