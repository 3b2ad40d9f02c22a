"""Certificate validation is never off by accident: over the lab's self-signed HTTPS
endpoint, a connection whose `cert_validation` is an empty string (which both pypsrp and
pywinrm read as "do not validate") is refused like a default one; only False connects
without the CA. The loader's side (exit 5 for '', unknown words and missing CA paths, a
warning for false) is in the inventory corpus."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pushinstall.errors import TransportError
from pushinstall.lab.wsman.endpoint import WSManLabEndpoint
from pushinstall.model import Connection, Host
from pushinstall.remote import ops
from pushinstall.secret import Secret
from pushinstall.transports.psrp import PSRPTransport
from pushinstall.transports.winrm import WinRMTransport

OS_FACTS = ops.request("facts", queries=[{"id": "os", "kind": "os"}])


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[WSManLabEndpoint]:
    from pushinstall.lab import lab_host

    with WSManLabEndpoint(tmp_path / "endpoint") as served:
        served.add_host(lab_host("h1", None), username="admin", password="pw-h13")
        yield served


def _host(endpoint: WSManLabEndpoint, transport: str, verify: bool | str) -> Host:
    where = endpoint.address("h1")
    return Host("h1", connection=Connection(
        transport=transport, address=where.address, port=where.https_port, auth="basic",
        tls=True, username="admin", password=Secret("pw-h13"), cert_validation=verify))


@pytest.mark.parametrize("kind", ["psrp", "winrm"])
def test_an_empty_cert_validation_still_validates(endpoint: WSManLabEndpoint, kind: str) -> None:
    make = PSRPTransport if kind == "psrp" else WinRMTransport
    empty = make(_host(endpoint, kind, ""))
    with pytest.raises(TransportError) as caught:
        empty.open()
    assert "cert_validation" in (caught.value.hint or "")
    off = make(_host(endpoint, kind, False))   # said explicitly: connects
    off.open()
    assert off.call(OS_FACTS)["ok"] is True
    off.close()
