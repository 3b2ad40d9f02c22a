"""pypsrp as the psrp transport uses it (`transports/psrp_session.py`): the NTLM keys derived
once per account, no proxy look-ups per request, pipelines serialized without copies. Against
the lab's WS-Man endpoint on real loopback sockets, real pypsrp and pyspnego; nothing mocked.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
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
