"""The lab's WS-Management endpoints: simulated hosts served over HTTP and HTTPS on loopback.

Routing: ONE PORT PER HOST AND SCHEME (free ports on 127.0.0.1), so an inventory names a
host's address and port exactly as for a Windows machine, and the WinRM and PSRP clients talk
to it unchanged. Each host gets
- an HTTP port: NTLM/Negotiate with message encryption (and Basic only if the host was added
  with `allow_unencrypted=True`, like WinRM's AllowUnencrypted);
- an HTTPS port: TLS with a self-signed certificate made when the endpoint starts (its PEM file
  `ca_file` is what a client trusts), Basic, NTLM or Negotiate.

Counters per host (`counters(name)`): connections, requests, bytes in and out. Endpoint-level
wire faults beside the host's lab vars: `faults(name).stall_s`.

`wire_host(host)` is what the transport factory needs: the inventory lab host served by this
process's endpoint (one per state dir, started on first use, stopped at exit), returned as a
copy whose connection is psrp over HTTP to 127.0.0.1 with NTLM and message encryption.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pushinstall import paths
from pushinstall.lab.pools import EndpointPool, Serving
from pushinstall.lab.wsman.auth import write_user_file
from pushinstall.lab.wsman.http import LOOPBACK, HostCounters, HostServer, HostSite, WireFaults
from pushinstall.lab.wsman.shells import LabHostLike
from pushinstall.model import Host
from pushinstall.secret import Secret

LAB_USERNAME = "pushinstall"
LAB_PASSWORD = "lab-password"  # the loopback lab's account when the inventory names none


@dataclass(frozen=True)
class HostAddress:
    """Where one host is served."""

    address: str
    http_port: int
    https_port: int


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost: `(cert.pem, key.pem)`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pushinstall lab")])
    now = dt.datetime.now(dt.timezone.utc)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.IPv4Address(LOOPBACK)), x509.DNSName("localhost")]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "lab-cert.pem", directory / "lab-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


class WSManLabEndpoint(Serving):
    """WS-Man endpoints for lab hosts. Use as a context manager, or `start()` and `stop()`."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.ca_file = work_dir / "lab-cert.pem"
        self._tls: ssl.SSLContext | None = None
        self._sites: dict[str, tuple[HostSite, HostServer, HostServer]] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        """Make the TLS certificate."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        cert, key = make_certificate(self.work_dir)
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._tls.load_cert_chain(cert, key)

    def stop(self) -> None:
        """Stop every host's ports and forget their shells; safe to call twice."""
        with self._lock:
            sites, self._sites = list(self._sites.values()), {}
        for site, http, https in sites:
            http.stop()
            https.stop()
            site.service.close_all()

    def add_host(self, lab_host: LabHostLike, *, username: str, password: str,
                 allow_unencrypted: bool = False, http_port: int = 0,
                 https_port: int = 0) -> HostAddress:
        """Serve `lab_host` on two new loopback ports (HTTP, HTTPS) for that account; a port
        of 0 is a free one. A port in use is `OSError`."""
        assert self._tls is not None, "start() the endpoint first"
        with self._lock:
            if lab_host.name in self._sites:
                raise ValueError(f"host {lab_host.name!r} is already served")
            user_file = write_user_file(self.work_dir / f"ntlm-{len(self._sites)}.txt",
                                        username, password)
            site = HostSite(lab_host, username, password, allow_unencrypted, user_file)
            http = HostServer(site, port=http_port)
            try:
                https = HostServer(site, self._tls, https_port)
            except OSError:
                http.stop()
                raise
            self._sites[lab_host.name] = (site, http, https)
        return self.address(lab_host.name)

    def serves(self, name: str) -> bool:
        """True when host `name` was added."""
        return name in self._sites

    def address(self, name: str) -> HostAddress:
        """Where host `name` is served."""
        _, http, https = self._sites[name]
        return HostAddress(LOOPBACK, http.port, https.port)

    def counters(self, name: str) -> HostCounters:
        """The live traffic counters of host `name` (both ports)."""
        return self._sites[name][0].counters

    def open_shells(self, name: str) -> int:
        """How many shells (runspace pools, WinRS shells) host `name` holds now."""
        return len(self._sites[name][0].service.shells)

    def winrs_refusals(self, name: str) -> int:
        """How many WinRS shells or receiver commands host `name` refused (`winrs_refused`)."""
        return self._sites[name][0].service.refusals[0]

    def faults(self, name: str) -> WireFaults:
        """The endpoint-level wire faults of host `name`, to change at will."""
        return self._sites[name][0].faults


POOL = EndpointPool("pushinstall-lab-wsman-", WSManLabEndpoint)


def shared_endpoint(state_dir: Path | None = None) -> WSManLabEndpoint:
    """This process's endpoint for `state_dir` (started on first use, stopped at exit)."""
    directory = (state_dir or paths.state_dir()).resolve()
    with POOL.lock:
        return POOL.get(directory)


def wire_host(host: Host, state_dir: Path | None = None) -> Host:
    """A copy of lab host `host` whose connection reaches it over PSRP on 127.0.0.1.

    The simulated machine is `pushinstall.lab.lab_host(host.name, host.vars["lab"], state_dir)`;
    it accepts the inventory's username and password (else LAB_USERNAME / LAB_PASSWORD) with
    NTLM over HTTP and message encryption.
    """
    from pushinstall.lab import lab_host

    endpoint = shared_endpoint(state_dir)
    model = lab_host(host.name, host.vars.get("lab"), state_dir)
    connection = host.connection
    username = connection.username or LAB_USERNAME
    password = connection.password or Secret(LAB_PASSWORD)
    with POOL.lock:
        if not endpoint.serves(host.name):
            endpoint.add_host(model, username=username, password=password.reveal())
    where = endpoint.address(host.name)
    wired = dataclasses.replace(
        connection, transport="psrp", address=where.address, port=where.http_port,
        tls=False, auth="ntlm", username=username, password=password,
        allow_unencrypted=False)
    return dataclasses.replace(host, connection=wired)

