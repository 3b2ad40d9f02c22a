"""A WinRS command's stdin Sends in two steps, so the push stream (`push.py`) makes the next
one while the one before it is in flight: `seal` builds a Send's envelope and, where that is
safe, encrypts it (no I/O: the push's producer thread); `post` sends it and reads the answer
(the host's thread, one Send at a time, in order). What goes on the wire is what pypsrp's
`WinRS.send` and pywinrm's `Protocol.send_command_input` send (tests/test_sealed_sends.py
compares the envelopes byte for byte), encrypted by the libraries' own code, and answers and
faults are read as their `invoke` and `send_message` read them.

The stream's base64 is spliced into an envelope serialized without it: escaping base64 text
changes nothing, and expat-free splicing saves serializing ~500 KB of text per Send.

Encrypting ahead is safe where sealing a request does not depend on opening the answers: NTLM
with extended session security seals each direction with its own key and RC4 state (MS-NLMP
3.4.5.3 SEALKEY, "client-to-server" and "server-to-client" sealing keys; 3.4, "When NTLM v2
authentication is not negotiated, only one key is used for sealing ... operations are
performed in a half-duplex mode"). Elsewhere (Kerberos, CredSSP, NTLM without it) the envelope
is built ahead and encrypted as it is posted, by the library, in order; over HTTPS there is
nothing to encrypt. A Send encrypted and never posted has spent one of the connection's
sequence numbers (MS-NLMP 3.4.4: the receiver expects each SeqNum in turn, and a message out
of turn is an error): that connection can carry nothing more (`Sealed.spent`, and
`wsman_common.GuardedCommand` gives such a connection up).
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
import xmltodict
from pypsrp.exceptions import WinRMError, WinRMTransportError
from pypsrp.wsman import NAMESPACES, WSManAction
from spnego._ntlm import NTLMProxy
from winrm.transport import Transport as _WinRMTransport

from pushinstall.transports.psrp_http import DirectHTTP

_HOLE = "PUSHINSTALL-STREAM-HOLE"      # where the stream's base64 goes into the envelope
CMD_URI = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
SEND_ACTION = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Send"


@dataclass(frozen=True)
class Sealed:
    """One Send, ready: the plain envelope and, when encrypted ahead (or over HTTPS, where
    nothing is encrypted), the body and headers to post."""

    message: bytes
    body: bytes | None = None           # None: the library encrypts `message` when posted
    headers: dict[str, str] = field(default_factory=dict)
    message_id: str = ""                # pypsrp checks the answer's RelatesTo
    spent: bool = False                 # encrypted: posting it is the connection's next turn


def seals_apart(context: Any) -> bool:
    """True when `context` (a pyspnego context, or what wraps one) is NTLM with extended
    session security: its outgoing and incoming messages have separate RC4 states and
    sequence numbers (see the module docstring)."""
    for _ in range(4):     # Negotiate -> its chosen mechanism; requests-ntlm's shim -> its own
        if isinstance(context, NTLMProxy):
            return context._handle_out is not None and context._handle_in is not None \
                and context._handle_out is not context._handle_in
        context = getattr(context, "_context", None)
    return False


def _spliced(envelope: bytes, data: bytes) -> bytes:
    if not data:        # an empty text was serialized as it is (ElementTree: `<x />`)
        return envelope
    head, hole, tail = envelope.partition(_HOLE.encode("ascii"))
    assert hole, "the envelope holds the stream's place"
    return b"".join((head, base64.b64encode(data), tail))


class PypsrpStdin:
    """Sends to one command's stdin over a pypsrp `WSMan` (its WinRS shell `shell`)."""

    def __init__(self, wsman: Any, shell: Any, command_id: str) -> None:
        self.wsman, self.shell, self.command_id = wsman, shell, command_id

    def seal(self, data: bytes, end: bool) -> Sealed:
        """The Send of `data` as `WinRS.send` and `WSMan.invoke` build it."""
        rsp, s = NAMESPACES["rsp"], NAMESPACES["s"]
        send = ET.Element(f"{{{rsp}}}Send")
        stream = ET.SubElement(send, f"{{{rsp}}}Stream", Name="stdin")
        stream.attrib["End"] = str(end)
        stream.attrib["CommandId"] = self.command_id
        stream.text = _HOLE if data else ""
        envelope = ET.Element(f"{{{s}}}Envelope")
        message_id, header = self.wsman._create_header(
            WSManAction.SEND, self.shell.resource_uri, None, self.shell._selector_set, None)
        envelope.append(header)
        ET.SubElement(envelope, f"{{{s}}}Body").append(send)
        message = _spliced(ET.tostring(envelope, encoding="utf-8", method="xml"), data)
        transport = self.wsman.transport
        message_id = f"uuid:{message_id}"
        encryption = transport.encryption
        if transport.session is None or (transport.wrap_required and (
                encryption is None or not seals_apart(encryption.context))):
            return Sealed(message, message_id=message_id)     # the library's way, when posted
        if not transport.wrap_required:     # HTTPS: posted as it is
            return Sealed(message, message,
                          {"Content-Type": "application/soap+xml;charset=UTF-8"}, message_id)
        content_type, body = encryption.wrap_message(message)   # as _TransportHTTP.send
        return Sealed(message, body, {
            "Content-Type": f'{content_type};protocol="{encryption.protocol}";'
                            'boundary="Encrypted Boundary"',
            "Content-Length": str(len(body))}, message_id, spent=True)

    def post(self, sealed: Sealed) -> None:
        """Send it; a fault raises as `WSMan.invoke` raises it."""
        transport = self.wsman.transport
        try:
            if sealed.body is None:
                response = transport.send(sealed.message)    # the library encrypts it now
            elif (isinstance(transport, DirectHTTP) and transport.posts_direct()
                  and transport.session is not None):
                # as DirectHTTP.send posts what it encrypts (~1 ms of CPU a Send less)
                headers = transport._headers(transport.session)
                headers.update(sealed.headers)
                answer = transport._send_direct(sealed.body, headers, None)
                if answer is None:      # a new connection: this Send was sealed for the old
                    raise WinRMTransportError("http", 401, "")
                response = answer
            else:
                headers = transport.session.headers.copy()
                headers.update(sealed.headers)
                response = transport._send_request(transport.session.prepare_request(
                    requests.Request("POST", transport.endpoint, data=sealed.body,
                                     headers=headers)))
        except WinRMTransportError as err:
            try:
                raise self.wsman._parse_wsman_fault(err.response_text) from None
            except ET.ParseError:
                raise err from None
        relates = ET.fromstring(response).find("s:Header/wsa:RelatesTo", namespaces=NAMESPACES)
        related = relates.text if relates is not None else ""
        if related != sealed.message_id:
            raise WinRMError("Received related id does not match related expected message "
                             f"id: Sent: {sealed.message_id}, Received: {related}")


class _SealedTransport(_WinRMTransport):
    """pywinrm's `Transport`, also posting a `Sealed` Send (everything else as it was)."""

    def send_message(self, message: Any) -> bytes:
        if not isinstance(message, Sealed):
            return super().send_message(message)
        if message.body is None:
            return super().send_message(message.message)   # the library encrypts it now
        session = self.build_session()
        prepared = session.prepare_request(
            requests.Request("POST", self.endpoint, data=message.body))
        prepared.headers.update(message.headers)   # as prepare_encrypted_request sets them
        return self._get_message_response_text(self._send_message_request(session, prepared))


class PywinrmStdin:
    """Sends to one command's stdin over a pywinrm `Protocol` (in its shell `shell_id`)."""

    def __init__(self, protocol: Any, shell_id: str, command_id: str) -> None:
        self.protocol, self.shell_id, self.command_id = protocol, shell_id, command_id
        if type(protocol.transport) is _WinRMTransport:
            protocol.transport.__class__ = _SealedTransport   # same object and state

    def seal(self, data: bytes, end: bool) -> Sealed:
        """The Send of `data` as `Protocol.send_command_input` builds it."""
        request = {"env:Envelope": self.protocol.build_wsman_header(
            resource_uri=CMD_URI, action=SEND_ACTION, shell_id=self.shell_id)}
        stream = request["env:Envelope"].setdefault("env:Body", {}).setdefault(
            "rsp:Send", {}).setdefault("rsp:Stream", {})
        stream["@CommandId"] = self.command_id
        stream["@Name"] = "stdin"
        stream["@End"] = "true" if end else "false"
        stream["@xmlns:rsp"] = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
        stream["#text"] = _HOLE if data else base64.b64encode(data)
        message = _spliced(xmltodict.unparse(request).encode("utf-8"), data)
        transport = self.protocol.transport
        encryption = transport.encryption
        if encryption is None:      # HTTPS (or no encryption): posted as it is
            return Sealed(message, message)
        security = getattr(getattr(transport.session, "auth", None), "session_security", None)
        if encryption.protocol != "ntlm" or not seals_apart(security):
            return Sealed(message)
        host = urlsplit(transport.endpoint).hostname
        body = encryption._encrypt_message(message, host) + encryption.MIME_BOUNDARY + b"--\r\n"
        protocol = encryption.protocol_string.decode()
        return Sealed(message, body, {
            "Content-Length": str(len(body)),
            "Content-Type": f'multipart/encrypted;protocol="{protocol}";'
                            'boundary="Encrypted Boundary"'}, spent=True)

    def post(self, sealed: Sealed) -> None:
        """Send it; a fault raises as `Protocol.send_message` raises it."""
        self.protocol.send_message(sealed)
