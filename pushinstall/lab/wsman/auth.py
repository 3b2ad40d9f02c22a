"""Authentication and HTTP message encryption of the lab's WS-Management endpoint.

- Basic: `Authorization: Basic` on every request, checked against the host's account.
- NTLM and Negotiate: connection-based, accepted by pyspnego's pure-Python acceptor, which reads
  accounts from the file named by the env var `NTLM_USER_FILE` (`DOMAIN:USER:PASSWORD` lines).
  Each host has its own file; the variable is pointed at it for each acceptor step, under one
  process-wide lock (a step takes milliseconds), so hosts may share a user name with different
  passwords. The endpoint also checks that the user who authenticated is the host's account.
  With Negotiate the final SPNEGO token goes back in
  `WWW-Authenticate` on the answer that completes the exchange.
- Message encryption (plain HTTP with NTLM/Negotiate): `multipart/encrypted` bodies whose
  payload pyspnego's `wrap_winrm`/`unwrap_winrm` seal and open (MS-WSMV 2.2.9.1.1).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import struct
import threading
from pathlib import Path

import spnego
from spnego.exceptions import SpnegoError

PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"
BOUNDARY = b"--Encrypted Boundary"
ENCRYPTED_TYPE = f'multipart/encrypted;protocol="{PROTOCOL}";boundary="Encrypted Boundary"'
CHALLENGE_HEADERS = ("Negotiate", "NTLM", 'Basic realm="WSMAN"')


_STEP_LOCK = threading.Lock()
_OCTET_STREAM = b"\tContent-Type: application/octet-stream\r\n"


def _parts(body: bytes) -> list[memoryview]:
    """`re.split(BOUNDARY (--)? CRLF, body)` without its empty parts, as views of `body`: a
    pushed block's ~500 KB is neither scanned by the regex engine nor copied."""
    view, parts, at, start = memoryview(body), [], 0, 0
    while (found := body.find(BOUNDARY, at)) >= 0:
        after = found + len(BOUNDARY)
        end = after + 4 if body.startswith(b"--\r\n", after) else \
            after + 2 if body.startswith(b"\r\n", after) else -1
        if end < 0:
            at = found + 1
            continue
        parts.append(view[start:found])
        at = start = end
    parts.append(view[start:])
    return [part for part in parts if len(part)]


def _without_first(data: memoryview, cut: bytes) -> memoryview | bytes:
    """`bytes(data).replace(cut, b"", 1)`, without a copy when `cut` leads (as it does)."""
    if data[:len(cut)] == cut:
        return data[len(cut):]
    return bytes(data).replace(cut, b"", 1)


def write_user_file(path: Path, username: str, password: str) -> Path:
    """Write a host's NTLM account file (`NTLM_USER_FILE` format); returns `path`."""
    path.write_text(_store_line(username, password) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def _store_line(username: str, password: str) -> str:
    """`DOMAIN\\user` -> `DOMAIN:user:password`; `user` or `user@domain` -> `:name:password`."""
    domain, _, user = username.rpartition("\\")
    return f"{domain}:{user}:{password}"


def user_part(username: str) -> str:
    """The account name without its domain: `LAB\\admin`, `admin@lab`, `admin` -> `admin`."""
    return username.rsplit("\\", 1)[-1].split("@")[0].lower()


class ConnectionAuth:
    """The authentication state of one HTTP connection to one host."""

    def __init__(self, username: str, password: str, user_file: Path) -> None:
        self.username = username
        self.password = password
        self.user_file = user_file
        self.context: spnego.ContextProxy | None = None
        self.authenticated = False

    def check(self, header: str, refuse: bool) -> tuple[bool, str | None]:
        """Process an `Authorization` header ("" when absent).

        Returns `(accepted, www_authenticate)`: when not accepted, answer 401 with the header
        (None: offer every scheme); when accepted, send the header (if any) with the answer.
        `refuse` fails every attempt (the lab's `bad_credentials`).
        """
        scheme, _, token = header.partition(" ")
        scheme_l = scheme.lower()
        if not header:
            return self.authenticated and self.context is not None, None
        if scheme_l == "basic":
            self.authenticated = False
            return self._basic(token) and not refuse, None
        if scheme_l not in ("negotiate", "ntlm"):
            return False, None
        try:
            data = base64.b64decode(token)
        except binascii.Error:
            return False, None
        try:
            with _STEP_LOCK:  # the acceptor reads NTLM_USER_FILE when made and when stepped
                os.environ["NTLM_USER_FILE"] = str(self.user_file)
                if self.context is None or self.context.complete:
                    protocol = "ntlm" if data.startswith(b"NTLMSSP\x00") else "negotiate"
                    self.context = spnego.server(protocol=protocol)
                    self.authenticated = False
                out = self.context.step(data)
        except SpnegoError:
            self.context = None
            return False, None
        reply = f"{scheme} {base64.b64encode(out).decode()}" if out else None
        if not self.context.complete:
            return False, reply
        if refuse or user_part(self.context.client_principal or "") != user_part(self.username):
            self.context = None
            return False, None
        self.authenticated = True
        return True, reply

    def _basic(self, token: str) -> bool:
        try:
            user, _, password = base64.b64decode(token).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return user_part(user) == user_part(self.username) and password == self.password

    def unwrap(self, body: bytes) -> bytes:
        """Open a `multipart/encrypted` body; ValueError when it does not open."""
        if self.context is None:
            raise ValueError("no security context on this connection")
        parts = _parts(body)
        opened = []
        for header, payload in zip(parts[0::2], parts[1::2], strict=False):
            match = re.search(rb"Length=(\d+)", header)
            wrapped = _without_first(payload, _OCTET_STREAM)
            if match is None or len(wrapped) < 4:
                raise ValueError("not an encrypted WinRM message")
            size = struct.unpack("<i", wrapped[:4])[0]
            try:
                plain = self.context.unwrap_winrm(bytes(wrapped[4:4 + size]),
                                                  wrapped[4 + size:])   # type: ignore[arg-type]
            except SpnegoError as exc:
                raise ValueError(f"the message does not decrypt: {exc}") from None
            if len(plain) != int(match.group(1)):
                raise ValueError("the decrypted length differs from the announced one")
            opened.append(plain)
        return opened[0] if len(opened) == 1 else b"".join(opened)

    def wrap(self, message: bytes) -> bytes:
        """Seal `message` as a `multipart/encrypted` body (Content-Type `ENCRYPTED_TYPE`)."""
        assert self.context is not None
        result = self.context.wrap_winrm(message)
        length = len(message) + result.padding_length
        return b"".join([
            BOUNDARY, b"\r\n",
            f"\tContent-Type: {PROTOCOL}\r\n".encode(),
            f"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length={length}\r\n"
            .encode(),
            BOUNDARY, b"\r\n",
            b"\tContent-Type: application/octet-stream\r\n",
            struct.pack("<i", len(result.header)), result.header, result.data,
            BOUNDARY, b"--\r\n",
        ])
