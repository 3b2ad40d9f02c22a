"""The lab's WS-Management endpoint on real loopback sockets (the `wire` fixture; `Wire` and
`run_asr` are in kit.py).

Nothing here is mocked: the endpoint serves real `LabHost`s over HTTP/HTTPS and the clients are
the real pypsrp, pywinrm and requests. What cannot run here is a Windows machine; the lab host
stands in for it (docs/lab.md), and tests/windows/ covers a real one when one is configured.
"""

from __future__ import annotations

import base64
import socket
from pathlib import Path

import pytest
import requests
from kit import OS_FACTS, PASSWORD, Wire

from pushinstall.errors import AuthenticationFailed, HostError, TransportError, Unreachable
from pushinstall.lab import lab_host
from pushinstall.lab.connect import make_transport
from pushinstall.lab.wsman.endpoint import wire_host
from pushinstall.lab.wsman.soap import OPERATION_TIMEOUT, UNENCRYPTED_REFUSED
from pushinstall.model import Connection, Host
from pushinstall.remote import bootstrap, ops
from pushinstall.secret import Secret
from pushinstall.transports.psrp import PSRPTransport


def _soap_receive(shell_id: str, message_id: str) -> bytes:
    return f"""<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"
 xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing"
 xmlns:wsman="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
 xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><s:Header>
<wsa:Action>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive</wsa:Action>
<wsa:MessageID>{message_id}</wsa:MessageID><wsman:OperationTimeout>PT0.2S</wsman:OperationTimeout>
<wsman:ResourceURI>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd</wsman:ResourceURI>
<wsman:SelectorSet><wsman:Selector Name="ShellId">{shell_id}</wsman:Selector></wsman:SelectorSet>
</s:Header><s:Body><rsp:Receive><rsp:DesiredStream>stdout</rsp:DesiredStream>
</rsp:Receive></s:Body></s:Envelope>""".encode()


# ---- the endpoint itself -------------------------------------------------------------------


def test_every_host_gets_its_own_http_and_https_port(wire: Wire) -> None:
    wire.serve("a")
    wire.serve("b")
    a, b = wire.endpoint.address("a"), wire.endpoint.address("b")
    ports = {a.http_port, a.https_port, b.http_port, b.https_port}
    assert len(ports) == 4 and a.address == "127.0.0.1"
    with pytest.raises(ValueError, match="already served"):
        wire.endpoint.add_host(lab_host("a"), username="x", password="y")


def test_an_empty_receive_is_the_timeout_fault_and_relates_to_the_request(wire: Wire) -> None:
    wire.serve("h1")
    transport = PSRPTransport(wire.host("h1", auth="basic", tls=True))
    transport.open()
    try:
        assert transport._pool is not None
        shell_id = str(transport._pool.shell.id)  # the pool has nothing more to say
        url = wire.endpoint.address("h1")
        answer = requests.post(
            f"https://127.0.0.1:{url.https_port}/wsman", verify=str(wire.endpoint.ca_file),
            data=_soap_receive(shell_id, "uuid:0F00-TEST"), auth=("admin", PASSWORD),
            headers={"Content-Type": "application/soap+xml;charset=UTF-8"}, timeout=5)
    finally:
        transport.close()
    assert answer.status_code == 500
    assert f'Code="{OPERATION_TIMEOUT}"' in answer.text
    assert "<wsa:RelatesTo>uuid:0F00-TEST</wsa:RelatesTo>" in answer.text


def test_plain_http_without_encryption_is_refused_unless_allowed(wire: Wire) -> None:
    wire.serve("strict")
    wire.serve("lenient", allow_unencrypted=True)
    for name, allowed in (("strict", False), ("lenient", True)):
        transport = PSRPTransport(wire.host(name, auth="basic", allow_unencrypted=True))
        if allowed:
            transport.open()
            assert transport.call(OS_FACTS)["ok"] is True
        else:
            with pytest.raises(TransportError) as caught:
                transport.open()
            assert str(UNENCRYPTED_REFUSED) in str(caught.value.__cause__)
        transport.close()


def test_https_certificate_is_validated_by_default(wire: Wire) -> None:
    wire.serve("h1")
    strict = PSRPTransport(wire.host("h1", auth="basic", tls=True, cert_validation=True))
    with pytest.raises(TransportError) as caught:
        strict.open()
    assert "cert_validation" in (caught.value.hint or "")
    trusting = PSRPTransport(wire.host("h1", auth="basic", tls=True))  # the lab's CA file
    trusting.open()
    assert trusting.call(OS_FACTS)["ok"] is True
    trusting.close()


def test_counters_see_requests_and_bytes_per_host(wire: Wire) -> None:
    wire.serve("busy")
    wire.serve("idle")
    transport = PSRPTransport(wire.host("busy"))
    transport.open()
    before = wire.endpoint.counters("busy").requests
    for _ in range(3):
        transport.call(OS_FACTS)
    transport.close()
    busy = wire.endpoint.counters("busy")
    assert busy.requests - before >= 6  # a Command and a Receive per call at least
    # the packed agent went in once (base64 in CLIXML, and PSRP's fragments base64 again)
    assert busy.bytes_in > len(bootstrap.packed(ops.agent_source())) * 16 // 9
    assert busy.bytes_out > 0 and busy.connections >= 1
    assert wire.endpoint.counters("idle").requests == 0


def test_a_dark_host_resets_connections_until_it_is_back(wire: Wire) -> None:
    model = wire.serve("h1", {"unreachable": True})
    where = wire.endpoint.address("h1")
    with pytest.raises((ConnectionResetError, BrokenPipeError)), \
            socket.create_connection((where.address, where.http_port), timeout=2) as sock:
        sock.sendall(b"POST /wsman HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        sock.recv(100)
    with pytest.raises(Unreachable):
        PSRPTransport(wire.host("h1")).open()
    model.update_vars({})
    transport = PSRPTransport(wire.host("h1"))
    transport.open()
    assert transport.call(OS_FACTS)["ok"] is True
    transport.close()


def test_ntlm_accounts_with_a_domain_and_basic_with_one(wire: Wire) -> None:
    wire.serve("dom", username="LAB\\Operator")
    for auth, tls in (("ntlm", False), ("negotiate", False), ("basic", True)):
        transport = PSRPTransport(wire.host("dom", auth=auth, tls=tls, username="LAB\\Operator"))
        transport.open()
        assert transport.call(OS_FACTS)["ok"] is True, auth
        transport.close()
    impostor = PSRPTransport(wire.host("dom", username="LAB\\Someone"))
    with pytest.raises(AuthenticationFailed):
        impostor.open()


def test_wire_host_serves_an_inventory_lab_host_over_psrp(state_dir: Path) -> None:
    inventory_host = Host("lab-x", vars={"lab": {"os": "2016"}},
                          connection=Connection(transport="lab", password=Secret("s3cret-pw")))
    wired = wire_host(inventory_host, state_dir)
    connection = wired.connection
    assert (connection.transport, connection.address, connection.auth, connection.tls) == (
        "psrp", "127.0.0.1", "ntlm", False)
    transport = make_transport(inventory_host)  # the factory's default for lab hosts
    assert isinstance(transport, PSRPTransport)
    transport.open()
    answer = ops.result_of(transport.call(OS_FACTS))
    transport.close()
    assert answer["os"]["caption"].endswith("2016 Datacenter")
    assert wire_host(inventory_host, state_dir).connection.port == connection.port


def test_basic_credentials_are_checked_on_every_request(wire: Wire) -> None:
    wire.serve("h1")
    where = wire.endpoint.address("h1")
    token = base64.b64encode(b"admin:wrong").decode()
    answer = requests.post(f"https://127.0.0.1:{where.https_port}/wsman",
                           verify=str(wire.endpoint.ca_file), data=b"<x/>",
                           headers={"Authorization": f"Basic {token}"}, timeout=5)
    assert answer.status_code == 401
    assert "Negotiate" in answer.headers["WWW-Authenticate"]


def test_host_errors_never_show_the_password(wire: Wire) -> None:
    wire.serve("h1", {"bad_credentials": True})
    transport = PSRPTransport(wire.host("h1"))
    with pytest.raises(HostError) as caught:
        transport.open()
    assert PASSWORD not in str(caught.value) and PASSWORD not in repr(caught.value.__cause__)
