"""pypsrp's HTTP transport, sending an encrypted message straight through urllib3 once the
connection is authenticated, and building its session without an environment scan.

Over plain HTTP with message encryption (NTLM/Negotiate: the default, and a check's every
request after the first two), pypsrp hands each sealed message to requests: a `Request`
prepared and merged with the session, `Session.send` with its hooks and the auth's hook (a
no-op after authentication), the adapter, a `Response` built with its cookie jar, the body read
in 10 KB chunks: 25 % of a compliance check's controller CPU, for what is one POST on a kept
connection. `DirectHTTP.send` makes that POST itself, through the SAME connection pool of the
session's adapter (so the NTLM-authenticated connection, the `ExchangeWatch` that cuts it at a
deadline and the pool's retry settings are the ones requests uses), with the same headers in
the same order, and maps urllib3's errors to requests' exceptions as requests' adapter and
`Response.content` do, so errors read as before (wsman_common.map_error).

The authentication (the first two requests: the blank message pypsrp sends to set up the
security context goes through requests and its auth, as pypsrp sends it; the pool's Create that
follows goes direct), a 401 later (the pool made a new connection,
which is not authenticated: requests' auth hook answers it as before), anything over HTTPS
(TLS verification and channel binding stay requests' and pyspnego's), a proxy, cookies or a
retry on read timeout go pypsrp's way, untouched.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any, cast

import requests
from pypsrp import _pool_manager
from pypsrp._utils import get_hostname
from pypsrp.encryption import WinRMEncryption
from pypsrp.exceptions import WinRMTransportError
from pypsrp.negotiate import HTTPNegotiateAuth
from pypsrp.wsman import _TransportHTTP
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    DecodeError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    ResponseError,
)
from urllib3.exceptions import SSLError as _SSLError
from urllib3.util import Retry, Timeout

_BOUNDARY = re.compile('boundary=["|](.*)["|]')   # pypsrp's own pattern (_send_request)


class DirectHTTP(_TransportHTTP):
    """pypsrp's `_TransportHTTP`, its encrypted messages POSTed through urllib3 directly;
    `sent` is called with each body sent (as requests' response hooks would be)."""

    sent: list[Callable[[bytes], None]]
    _target: requests.PreparedRequest | None = None

    def _build_session(self) -> requests.Session:
        """pypsrp's `_build_session` (0.9.1), for a transport told `no_proxy`: the same session
        without requests' scan of the environment for proxy variables (each variable decoded
        and lowercased: 7 % of a check's controller CPU), whose result pypsrp then replaces
        by "no proxy" anyway. The CA bundle variables are read as requests reads them."""
        if not self.no_proxy or self.proxy is not None:
            return super()._build_session()
        self._suppress_library_warnings()
        session = requests.Session()
        session.headers["User-Agent"] = "Python PSRP Client"
        session.headers["Accept-Encoding"] = "identity"
        session.trust_env = True
        session.proxies = {"https" if self.ssl else "http": False}  # type: ignore[dict-item]
        retries = Retry(total=self.reconnection_retries, connect=self.reconnection_retries,
                        status=self.reconnection_retries, read=0,
                        backoff_factor=self.reconnection_backoff,
                        status_forcelist=(425, 429, 503))
        session.mount("http://", _pool_manager.create_request_adapter(max_retries=retries))
        session.mount("https://", _pool_manager.create_request_adapter(
            max_retries=retries, key_password=self.certificate_key_password))
        session.verify = self.cert_validation
        if isinstance(self.cert_validation, bool) and self.cert_validation:
            # requests' merge_environment_settings: "be compatible with cURL"
            session.verify = (os.environ.get("REQUESTS_CA_BUNDLE")
                              or os.environ.get("CURL_CA_BUNDLE") or True)
        getattr(self, f"_build_auth_{self.auth}")(session)
        return session

    def send(self, message: bytes, *, retries_on_read_timeout: int = 0,
             timeout: int | float | tuple[int | float, int | float] | None = None) -> bytes:
        if self.session is None:
            self.session = self._build_session()   # as pypsrp's send builds it
        if (retries_on_read_timeout or not self.posts_direct()
                or (self.encryption is None and not self._authenticate(timeout))):
            return super().send(message, retries_on_read_timeout=retries_on_read_timeout,
                                timeout=timeout)
        session, encryption = self.session, self.encryption
        assert encryption is not None
        content_type, payload = encryption.wrap_message(message)
        headers = self._headers(session)
        headers["Content-Type"] = (f'{content_type};protocol="{encryption.protocol}";'
                                   'boundary="Encrypted Boundary"')
        headers["Content-Length"] = str(len(payload))
        answer = self._send_direct(payload, headers, timeout)
        if answer is None:   # 401: a new, unauthenticated connection; requests' auth decides
            return super().send(message, timeout=timeout)
        return answer

    def posts_direct(self) -> bool:
        """True when a sealed message goes through urllib3 directly: message encryption on
        plain HTTP (Basic, certificate or HTTPS go requests' way: their credentials and TLS are
        its), no proxy, no cookies, no environment settings."""
        session = self.session
        return (session is not None and self.wrap_required and not self.ssl
                and not session.cookies and not session.trust_env
                and not any(session.proxies.values()))

    def _authenticate(self, timeout: Any) -> bool:
        """pypsrp's first step of `send` (0.9.1) for an NTLM/Negotiate session: the blank
        message, through requests and its auth, that sets up the security context; then the
        encryption over it. True when the encryption is set, so the message that follows (the
        pool's Create) can go direct; False leaves all of it to pypsrp's `send`."""
        session = self.session
        if session is None or not isinstance(session.auth, HTTPNegotiateAuth):
            return False
        request = session.prepare_request(requests.Request("POST", self.endpoint, data=None))
        self._send_request(request, timeout=timeout)
        context = session.auth.contexts[get_hostname(self.endpoint) or ""]
        protocol = (WinRMEncryption.KERBEROS if context.response_auth_header == "kerberos"
                    else WinRMEncryption.SPNEGO)
        self.encryption = WinRMEncryption(context, protocol)
        return True

    def _headers(self, session: requests.Session) -> CaseInsensitiveDict[Any]:
        """The headers requests would send: the session's, in their order, with the
        negotiate auth's `Connection: Keep-Alive` (pypsrp's HTTPNegotiateAuth.__call__)."""
        headers: CaseInsensitiveDict[Any] = CaseInsensitiveDict(
            {k: v for k, v in session.headers.items() if v is not None})
        headers["Connection"] = "Keep-Alive"
        return headers

    def _send_direct(self, payload: bytes, headers: CaseInsensitiveDict[Any],
                     timeout: int | float | tuple[int | float, int | float] | None
                     ) -> bytes | None:
        """POST `payload` on the session's pool; the answer's body, unsealed, or None for a
        401. (The ExchangeWatch bounds this exchange as it does `_send_request`.)"""
        session = self.session
        assert session is not None
        adapter = session.get_adapter(self.endpoint)
        assert isinstance(adapter, HTTPAdapter)
        if self._target is None:
            self._target = requests.Request("POST", self.endpoint).prepare()
        target = self._target
        pool = adapter.get_connection_with_tls_context(target, session.verify,
                                                       session.proxies, session.cert)
        adapter.cert_verify(pool, self.endpoint, session.verify, session.cert)
        timeout = timeout if timeout is not None else (self.connection_timeout,
                                                       self.read_timeout)
        connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        try:
            response = pool.urlopen(
                method="POST", url=target.path_url, body=payload, headers=headers,
                redirect=False, assert_same_host=False, preload_content=False,
                decode_content=False, retries=adapter.max_retries,
                timeout=Timeout(connect=connect, read=read), chunked=False)
        except Exception as error:
            raise _sending_error(error, target) from error
        try:
            content = response.read(decode_content=True)   # as iter_content reads
        except Exception as error:
            raise _reading_error(error) from error
        finally:
            response.release_conn()
        for hook in self.sent:
            hook(payload)
        if response.status == 401:
            return None
        content_type = response.headers.get("content-type", "")
        if content_type.startswith(("multipart/encrypted;", "multipart/x-multi-encrypted;")):
            found = _BOUNDARY.search(content_type)
            assert found is not None and self.encryption is not None
            content = self.encryption.unwrap_message(content, found.group(1))
            text = content.decode("utf-8")
        else:
            encoding = get_encoding_from_headers(cast(Any, response.headers)) or "utf-8"
            text = content.decode(encoding, "replace") if content else ""
        if 400 <= response.status < 600:    # requests' raise_for_status
            raise WinRMTransportError("http", response.status, text)
        return bytes(content)


def _sending_error(error: Exception, request: requests.PreparedRequest) -> Exception:
    """A urllib3 error of `urlopen` as requests' `HTTPAdapter.send` raises it."""
    if isinstance(error, ProtocolError | OSError):
        return requests.exceptions.ConnectionError(error, request=request)
    if isinstance(error, MaxRetryError):
        reason = error.reason
        if isinstance(reason, ConnectTimeoutError) and not isinstance(reason,
                                                                      NewConnectionError):
            return requests.exceptions.ConnectTimeout(error, request=request)
        if isinstance(reason, ResponseError):
            return requests.exceptions.RetryError(error, request=request)
        if isinstance(reason, _SSLError):
            return requests.exceptions.SSLError(error, request=request)
        return requests.exceptions.ConnectionError(error, request=request)
    if isinstance(error, ClosedPoolError):
        return requests.exceptions.ConnectionError(error, request=request)
    if isinstance(error, _SSLError):
        return requests.exceptions.SSLError(error, request=request)
    if isinstance(error, ReadTimeoutError):
        return requests.exceptions.ReadTimeout(error, request=request)
    return error


def _reading_error(error: Exception) -> Exception:
    """A urllib3 error reading the body as requests' `Response.iter_content` raises it."""
    if isinstance(error, ProtocolError):
        return requests.exceptions.ChunkedEncodingError(error)
    if isinstance(error, ReadTimeoutError):
        return requests.exceptions.ConnectionError(error)
    if isinstance(error, _SSLError):
        return requests.exceptions.SSLError(error)
    if isinstance(error, DecodeError):
        return requests.exceptions.ContentDecodingError(error)
    return error
