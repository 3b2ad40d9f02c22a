"""After authentication, the psrp transport POSTs each sealed message through urllib3 itself
(`transports/psrp_http.py`), on the session's own connection pool: against the lab's WS-Man
endpoint through a recording TCP relay, what goes on the wire is held to what requests sends
for the same check (request lines and headers, in order), the wire counter counts the same,
and urllib3's errors surface as the requests exceptions map_error knows. Real pypsrp,
requests, urllib3 and pyspnego on loopback sockets; nothing mocked.
"""

from __future__ import annotations

import dataclasses
import re
import socket

import pytest
import requests
from drip_server import DripProxy
from kit import OS_FACTS, Wire
from pypsrp.wsman import _TransportHTTP

from pushinstall.errors import HostError
from pushinstall.transports import psrp_http
from pushinstall.transports.psrp import PSRPTransport


def _requests_of(sent: bytes) -> list[list[str]]:
    """Each HTTP request's line and headers; the values that differ between two sessions
    (the NTLM tokens, the relay's port, the sealed body's length) by name only."""
    seen = []
    while sent:
        head, _, sent = sent.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = 0
        shown = [lines[0]]
        for line in lines[1:]:
            name, _, value = line.partition(": ")
            if name.lower() == "content-length":
                length = int(value)
            if name.lower() in ("host", "content-length"):
                value = "*"
            elif name.lower() == "authorization":
                value = value.split(" ")[0]
            shown.append(f"{name}: {value}")
        sent = sent[length:]
        seen.append(shown)
    return seen


def _check_through_relay(wire: Wire, name: str) -> tuple[list[list[str]], int, int]:
    wire.serve(name)
    host = wire.host(name)
    with DripProxy(host.connection.address or "", host.connection.port or 0) as relay:
        relayed = dataclasses.replace(host, connection=dataclasses.replace(
            host.connection, address="127.0.0.1", port=relay.port))
        transport = PSRPTransport(relayed)
        transport.open()
        try:
            assert transport.call(OS_FACTS)["ok"] is True
            counted = (transport.wire.requests, transport.wire.bytes_sent)
        finally:
            transport.close()
        return _requests_of(bytes(relay.sent)), *counted


def test_a_direct_post_is_what_requests_sends(wire: Wire, monkeypatch: pytest.MonkeyPatch
                                              ) -> None:
    direct_posts = []
    send_direct = psrp_http.DirectHTTP._send_direct

    def counted(self: psrp_http.DirectHTTP, *args: object) -> bytes:
        direct_posts.append(1)
        return send_direct(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(psrp_http.DirectHTTP, "_send_direct", counted)
    ours, requests_ours, bytes_ours = _check_through_relay(wire, "d1")
    # all but the two authentication requests: the pool's Create and Receive, the
    # bootstrap's Command and Receive, the close
    assert len(direct_posts) == 5
    monkeypatch.setattr(psrp_http.DirectHTTP, "send", _TransportHTTP.send)   # requests' way
    theirs, requests_theirs, bytes_theirs = _check_through_relay(wire, "d2")
    assert ours == theirs
    assert len(ours) == 7 and ours[0][0] == "POST /wsman HTTP/1.1"
    assert (requests_ours, bytes_ours) == (requests_theirs, bytes_theirs)
    # counted from the connect on (the pool open: 4 requests), read before the close (1)
    assert requests_ours == len(ours) - 5 and bytes_ours > 0


def _after_a_cut(wire: Wire, name: str) -> str:
    """What a call raises after the server's end of the authenticated connection went away
    (the pool opens a new one, which is not authenticated: the NTLM context was the old
    connection's, and the 401 goes to requests' auth as before)."""
    wire.serve(name)
    transport = PSRPTransport(wire.host(name))
    transport.open()
    try:
        assert transport._wsman is not None
        http = transport._wsman.transport
        session = http.session
        assert session is not None
        pool = session.get_adapter(http.endpoint).get_connection_with_tls_context(
            requests.Request("POST", http.endpoint).prepare(), session.verify,
            session.proxies, session.cert)
        for connection in list(pool.pool.queue):
            if connection is not None and connection.sock is not None:
                connection.sock.shutdown(socket.SHUT_RDWR)
        with pytest.raises(HostError) as raised:
            transport.call(OS_FACTS)
        said = f"{type(raised.value).__name__}: {raised.value}".replace(name, "HOST")
        return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", said)
    finally:
        transport.close()


def test_a_cut_connection_fails_as_it_does_through_requests(
        wire: Wire, monkeypatch: pytest.MonkeyPatch) -> None:
    ours = _after_a_cut(wire, "d3")
    monkeypatch.setattr(psrp_http.DirectHTTP, "send", _TransportHTTP.send)   # requests' way
    assert _after_a_cut(wire, "d4") == ours
    # requests' auth answered the new connection's 401 and re-sent the sealed message
    assert ours.startswith("TransportError") and "does not decrypt" in ours


def test_a_urllib3_error_maps_as_requests_maps_it() -> None:
    from urllib3.exceptions import (
        ConnectTimeoutError,
        MaxRetryError,
        NewConnectionError,
        ProtocolError,
        ReadTimeoutError,
    )

    request = requests.Request("POST", "http://127.0.0.1:1/wsman").prepare()
    cases = [(ProtocolError("x"), requests.exceptions.ConnectionError),
             (MaxRetryError(None, "/", ConnectTimeoutError()), requests.exceptions.ConnectTimeout),
             (MaxRetryError(None, "/", NewConnectionError(None, "refused")),  # type: ignore[arg-type]
              requests.exceptions.ConnectionError),
             (ReadTimeoutError(None, "/", "slow"), requests.exceptions.ReadTimeout),
             (ConnectionResetError(), requests.exceptions.ConnectionError)]
    for error, kind in cases:
        assert type(psrp_http._sending_error(error, request)) is kind
    assert type(psrp_http._reading_error(ProtocolError("cut"))) is \
        requests.exceptions.ChunkedEncodingError
    assert type(psrp_http._reading_error(ReadTimeoutError(None, "/", "slow"))) is \
        requests.exceptions.ConnectionError


def _session_of(kind: type[_TransportHTTP], **settings: object) -> dict[str, object]:
    transport = kind("127.0.0.1", username="LAB\\u", password="p", no_proxy=True,
                     **settings)  # type: ignore[arg-type]
    session = transport._build_session()
    adapters = {}
    for prefix, adapter in session.adapters.items():
        retries = adapter.max_retries   # type: ignore[attr-defined]
        adapters[prefix] = (type(adapter), retries.total, retries.connect, retries.status,
                            retries.read, retries.backoff_factor, retries.status_forcelist,
                            dict(adapter.poolmanager.pool_classes_by_scheme).keys(),  # type: ignore[attr-defined]
                            vars(adapter).get("_HTTPSAdapterWithKeyPassword__key_password"))
    auth = session.auth
    return {"headers": dict(session.headers), "proxies": session.proxies,
            "verify": session.verify, "trust_env": session.trust_env, "cert": session.cert,
            "adapters": adapters, "auth": (type(auth), {k: v for k, v in vars(auth).items()
                                                       if k != "contexts"})}


@pytest.mark.parametrize("settings", [
    {"ssl": False, "auth": "ntlm"}, {"ssl": False, "auth": "negotiate"},
    {"ssl": True, "auth": "ntlm"}, {"ssl": True, "auth": "basic"},
    {"ssl": True, "auth": "ntlm", "cert_validation": False},
    {"ssl": True, "auth": "negotiate", "cert_validation": "/etc/ssl/certs/ca.pem"},
    {"ssl": False, "auth": "ntlm", "reconnection_retries": 3, "reconnection_backoff": 1.5}])
@pytest.mark.parametrize("environment", [{}, {"HTTP_PROXY": "http://127.0.0.9:1",
                                              "HTTPS_PROXY": "http://127.0.0.9:1",
                                              "NO_PROXY": ""},
                                         {"REQUESTS_CA_BUNDLE": "/tmp/requests-ca.pem"},
                                         {"CURL_CA_BUNDLE": "/tmp/curl-ca.pem"}])
def test_the_session_is_built_as_pypsrp_builds_it(settings: dict[str, object],
                                                 environment: dict[str, str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE",
                 "CURL_CA_BUNDLE", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert _session_of(psrp_http.DirectHTTP, **settings) == _session_of(_TransportHTTP,
                                                                        **settings)
