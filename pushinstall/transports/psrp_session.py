"""pypsrp as the psrp transport uses it, minus work that need not be redone for every host,
request or pipeline (a 1,000-host sweep makes 8,000 requests and 1,000 pipelines).

- The NTLM keys of an account are derived once per process, not once per connection: pyspnego
  computes the LM and NT hashes of the password each time a context is made, and its LM hash
  is pure-Python DES (~1.5 ms, 7 % of a compliance check's controller CPU). The context is
  handed the hashes as an `NTLMHash` credential (what pyspnego itself makes of an `LM:NT`
  password), followed by the password for the protocols that need it (Kerberos under
  Negotiate): pyspnego takes, for each protocol, the first credential that serves it.
- Proxies come from the transport's settings alone: pypsrp is always told `no_proxy`, so the
  environment's proxy variables are never used, yet requests would look them up (and parse
  `no_proxy`) on every request while `trust_env` is on.
- Over plain HTTP the first NTLM/Negotiate token goes with the first request
  (`EagerNegotiateAuth`): pypsrp first sends the request bare, only to learn from the 401
  which schemes the server offers, a round trip per connection (one request in eight of a
  compliance check). A server that does not take the token answers 401 without a
  challenge, and the exchange starts over as pypsrp's. Over HTTPS the token binds the TLS
  channel (CBT), whose certificate is only known once connected: there pypsrp's way stays.
- A pipeline's commands are not deep-copied to be serialized (`PowerShell`): pypsrp copies
  each command with all its metadata (~350 objects) twice per pipeline, to guard lxml trees
  where appending an element moves it; pypsrp serializes with the standard ElementTree, and
  the copies were only ever read.
- A request is prepared the short way (`LeanSession.prepare_request`) while nothing needs
  requests' general one (no cookies, files, JSON, params or per-request auth): the session's
  headers and the request's are merged as requests merges them, the endpoint's URL is
  parsed once, the auth and hooks are requests' own; and the adapter finds the connection
  pool of a URL once (`pool_once`), not by parsing the URL and building the pool key anew per
  request. What goes on the wire is what requests sends.
- The room left for a payload in an envelope (`WSMan._calc_envelope_size`) is computed once
  per URL length and settings: pypsrp builds and serializes a sample envelope for it when a
  `WSMan` is made and again when the server's session capability arrives, though its length
  only depends on the length of the endpoint's URL, the locales, the timeout and the sizes
  (its UUIDs have one length).
- A primitive value in an answer (a string, a number: most of what an answer holds) is read
  from its element alone (`Serializer`): pypsrp first serializes every element it reads back
  to XML text, which only complex objects keep (as `_xml`).
- The pool's APPLICATION_PRIVATE_DATA, which every host of a version answers alike, is read
  once per text (`Serializer`): a message is read with the serializer's references cleared,
  so what pypsrp makes of it depends on its class and text alone, and each later one of the
  same text gets a deep copy of the first (a nested PSPrimitiveDictionary: ~0.16 ms to read,
  ~0.03 ms to copy). The other messages cost about as much to copy as to read, so they, a
  text past a few KB and any past the first few dozen kept are read by pypsrp as before.
"""

from __future__ import annotations

import base64
import copy
import functools
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any, cast
from xml.sax.saxutils import escape

import requests
import spnego
from pypsrp._utils import get_hostname
from pypsrp.complex_objects import ObjectMeta, Pipeline
from pypsrp.exceptions import WinRMError, WinRMTransportError
from pypsrp.messages import ApplicationPrivateData
from pypsrp.negotiate import HTTPNegotiateAuth
from pypsrp.powershell import PowerShell as _PowerShell
from pypsrp.powershell import RunspacePool as _RunspacePool
from pypsrp.serializer import Serializer as _Serializer
from pypsrp.wsman import NAMESPACES, _TransportHTTP
from pypsrp.wsman import WSMan as _WSMan
from requests.cookies import RequestsCookieJar
from requests.sessions import merge_hooks
from requests.structures import CaseInsensitiveDict

# pyspnego's own derivation, so the keys are the ones its Password credential would give
from spnego._ntlm_raw.crypto import lmowfv1, ntowfv1

from pushinstall.transports import psrp_http, psrp_messages, wsman_envelope


@functools.lru_cache(maxsize=32)
def ntlm_credentials(username: str, password: str) -> list[Any]:
    """`[NTLMHash, Password]` for `username`: NTLM uses the hashes, computed here once."""
    return [spnego.NTLMHash(username=username, lm_hash=lmowfv1(password).hex(),
                            nt_hash=ntowfv1(password).hex()),
            spnego.Password(username=username, password=password)]


def tune(session: requests.Session) -> requests.Session:
    """`session` as pypsrp built it, with the per-connection and per-request work above
    taken out; returns it."""
    session.trust_env = False   # proxies were settled when the session was built
    if type(session) is requests.Session:
        session.__class__ = LeanSession
    for adapter in session.adapters.values():
        pool_once(adapter)
    auth = session.auth
    if (type(auth) is HTTPNegotiateAuth and isinstance(auth.username, str)
            and auth.password and auth.auth_provider in ("negotiate", "ntlm")):
        auth.username = ntlm_credentials(auth.username, auth.password)  # type: ignore[assignment]
        auth.password = None
        auth.__class__ = EagerNegotiateAuth   # same settings; the first token goes at once
    return session


class LeanSession(requests.Session):
    """requests' `Session`, preparing a plain request without the general machinery."""

    _urls: dict[str, str]

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        if (self.cookies or request.cookies or request.files or request.json is not None
                or request.params or request.auth or self.params or self.trust_env
                or not isinstance(request.url, str)):
            return super().prepare_request(request)
        urls = self.__dict__.setdefault("_urls", {})
        url = urls.get(request.url)
        if url is None:
            parsed = requests.PreparedRequest()
            parsed.prepare_url(request.url, None)
            url = urls[request.url] = cast(str, parsed.url)
        headers: CaseInsensitiveDict[Any] = CaseInsensitiveDict(self.headers)   # as merge_setting
        headers.update(request.headers or {})
        prepared = requests.PreparedRequest()
        prepared.prepare_method(request.method)
        prepared.url = url
        prepared.prepare_headers({k: v for k, v in headers.items() if v is not None})
        prepared.prepare_cookies(RequestsCookieJar())
        prepared.prepare_body(request.data, None, None)
        prepared.prepare_auth(self.auth, request.url)
        prepared.prepare_hooks(merge_hooks(request.hooks, self.hooks))
        return prepared


def pool_once(adapter: Any) -> None:
    """Have a requests `HTTPAdapter` keep the connection pool it last found for a URL (no
    proxy) and TLS settings, until the adapter is closed or the pool is.

    One pool is kept, as the session talks to one endpoint: its pool manager holds the ten
    it found last, so the one kept is always among them, as it would be found again."""
    find = getattr(adapter, "get_connection_with_tls_context", None)
    if find is None:
        return
    kept: list[Any] = []    # [(key, pool)] or nothing

    @functools.wraps(find)
    def found(request: requests.PreparedRequest, verify: Any, proxies: Any = None,
              cert: Any = None) -> Any:
        if (proxies and any(proxies.values())) or not isinstance(cert, str | tuple | None):
            return find(request, verify, proxies, cert)
        key = (request.url, verify, cert)
        if kept and kept[0][0] == key and kept[0][1].pool is not None:   # not closed
            return kept[0][1]
        pool = find(request, verify, proxies, cert)
        kept[:] = [(key, pool)]
        return pool

    close = adapter.close

    @functools.wraps(close)
    def closed() -> None:
        kept.clear()     # the manager forgets its pools: so does this
        close()

    adapter.get_connection_with_tls_context = found
    adapter.close = closed


class EagerNegotiateAuth(HTTPNegotiateAuth):
    """pypsrp's Negotiate/NTLM auth, its first token sent with the first plain-HTTP request."""

    SCHEME = "Negotiate"   # what WinRM offers first; it takes a bare NTLM token under it too
    _eager = ""            # the host whose first token went with the request, until answered

    def __call__(self, request: Any) -> Any:
        request = super().__call__(request)
        host = get_hostname(request.url) or ""
        if host not in self.contexts and request.url.startswith("http://"):
            options = (spnego.NegotiateOptions.wrapping_winrm if self.wrap_required
                       else spnego.NegotiateOptions.none)
            context_req = spnego.ContextReq.default
            if self.delegate:
                context_req |= spnego.ContextReq.delegate
            context = spnego.client(self.username, self.password,
                                    hostname=self.hostname_override or host,
                                    service=self.service, context_req=context_req,
                                    protocol=self.auth_provider, options=options)
            self._set_auth_token(request, context.step(), self.SCHEME)
            self.contexts[host] = context
            self._eager = host
        return request

    def response_hook(self, response: Any, **kwargs: Any) -> Any:
        host = get_hostname(response.url) or ""
        if response.status_code != 401 or self._eager != host:
            return super().response_hook(response, **kwargs)
        self._eager = ""
        context = self.contexts[host]
        in_token = self._get_auth_token(response, self._regex)
        if not in_token:   # the token was not taken: start over, as pypsrp does
            del self.contexts[host]
            return super().response_hook(response, **kwargs)
        out_token = context.step(in_token)
        while not context.complete or out_token is not None:
            response.content   # noqa: B018 - read it all, so the connection can be reused
            response.raw.release_conn()
            request = response.request.copy()
            self._set_auth_token(request, out_token, self.SCHEME)
            response = response.connection.send(request, **kwargs)
            in_token = self._get_auth_token(response, self._regex)
            if not in_token:
                break
            out_token = context.step(in_token)
        # the encryption reads the scheme that was used (pypsrp's handle_401 sets it too)
        context.response_auth_header = self.SCHEME.lower()
        return response


def tune_wsman(wsman: Any) -> None:
    """Have a pypsrp `WSMan` build its session (lazily, on the first request, as it does)
    through `tune`."""
    transport = wsman.transport
    build = transport._build_session

    @functools.wraps(build)
    def built() -> requests.Session:
        return tune(build())

    transport._build_session = built


class _Statements(Pipeline):
    """pypsrp's `Pipeline`, grouping its commands into statements without copying them."""

    def _get_statements(self) -> list[list[Any]]:
        commands: list[Any] = self.commands or []
        statements: list[list[Any]] = []
        current: list[Any] = []
        commands[-1].end_of_statement = True
        for command in commands:
            current.append(command)
            if command.end_of_statement:
                statements.append(current)
                current = []
        return statements


class PowerShell(_PowerShell):
    """pypsrp's `PowerShell`, its CreatePipeline message serialized without the copies."""

    def _invoke(self, msg: Any) -> None:
        pipeline = getattr(msg, "pipeline", None)
        if type(pipeline) is Pipeline:
            pipeline.__class__ = _Statements   # same object, same state: only the grouping
        super()._invoke(msg)


_ENVELOPE_ROOM: dict[tuple[Any, ...], int] = {}


class WSMan(_WSMan):
    """pypsrp's `WSMan`, the room for a payload computed once per length of endpoint URL
    (as the envelope's text holds it) and settings, and each request's envelope written from
    a template (`wsman_envelope`), not through ElementTree; its HTTP transport
    `psrp_http.DirectHTTP`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if type(self.transport) is _TransportHTTP:
            self.transport.__class__ = psrp_http.DirectHTTP   # same object, same settings
            cast(psrp_http.DirectHTTP, self.transport).sent = []

    def invoke(self, action: str, resource_uri: str, resource: ET.Element | None,
               option_set: Any = None, selector_set: Any = None, timeout: int | None = None,
               *, retries_on_read_timeout: int = 0) -> ET.Element:
        made = wsman_envelope.envelope(self, action, resource_uri, resource, option_set,
                                       selector_set, timeout)
        if made is None:
            return super().invoke(action, resource_uri, resource, option_set, selector_set,
                                  timeout, retries_on_read_timeout=retries_on_read_timeout)
        message_id, xml = made
        # what follows is pypsrp's own WSMan.invoke (0.9.1), after its envelope is built
        try:
            response = self.transport.send(xml, retries_on_read_timeout=retries_on_read_timeout,
                                           timeout=timeout + 2 if timeout else None)
        except WinRMTransportError as err:
            try:
                raise self._parse_wsman_fault(err.response_text) from err
            except ET.ParseError:
                raise err from None
        response_xml = ET.fromstring(response)
        relates_to = response_xml.find("s:Header/wsa:RelatesTo", namespaces=NAMESPACES)
        if f"uuid:{message_id}" != (relates_to.text if relates_to is not None else ""):
            raise WinRMError("Received related id does not match related expected message id: "
                             f"Sent: uuid:{message_id}, Received: "
                             f"{relates_to.text if relates_to is not None else ''}")
        return response_xml

    def _calc_envelope_size(self, max_envelope_size: int) -> int:
        key = (len(escape(self.transport.endpoint).encode("utf-8")), self.locale, self.data_locale,
               str(self.max_envelope_size), self.operation_timeout, max_envelope_size)
        room = _ENVELOPE_ROOM.get(key)
        if room is None:
            room = _ENVELOPE_ROOM[key] = super()._calc_envelope_size(max_envelope_size)
        return room


def _text(element: ET.Element) -> str:
    return cast(str, element.text)   # None fails as it does in pypsrp


# pypsrp's `Serializer.deserialize` table of primitive tags, as functions of (serializer,
# element); tests/test_psrp_session.py holds each one to pypsrp's own answer
_PRIMITIVES: dict[str, Callable[[Any, ET.Element], Any]] = {
    **dict.fromkeys(("S", "ToString", "URI", "XD", "SBK"),
                    lambda s, e: s._deserialize_string(e.text)),
    "C": lambda s, e: chr(int(_text(e))),
    "B": lambda s, e: _text(e).lower() == "true",
    **dict.fromkeys(("DT", "TS", "D", "Version"), lambda s, e: e.text),
    **dict.fromkeys(("By", "SB", "U16", "I16", "U32", "I32", "U64", "I64"),
                    lambda s, e: int(_text(e))),
    **dict.fromkeys(("Sg", "Db"), lambda s, e: float(_text(e))),
    "BA": lambda s, e: base64.b64decode(_text(e)),
    "G": lambda s, e: uuid.UUID(_text(e)),
    "SS": lambda s, e: s._deserialize_secure_string(e),
    "Nil": lambda s, e: None,
    "Ref": lambda s, e: s.obj[e.attrib["RefId"]],
}


# the messages read once per text, and how much is kept (texts, and the length of one)
READ_ONCE: tuple[type, ...] = (ApplicationPrivateData,)
READ_ONCE_TEXTS = 64
READ_ONCE_LENGTH = 8192


class _ReadOnce:
    """What pypsrp made of each message text read so far (of `READ_ONCE`), up to a bound."""

    def __init__(self) -> None:
        self.read: dict[tuple[type, str], Any] = {}
        self.lock = threading.Lock()

    def get(self, serializer: _Serializer, text: str, metadata: ObjectMeta) -> Any:
        key = (metadata.object, text)
        first = self.read.get(key)
        if first is None:
            first = _Serializer.deserialize(serializer, text, metadata)
            with self.lock:
                if len(self.read) < READ_ONCE_TEXTS:   # a copy: the caller may change its own
                    self.read.setdefault(key, copy.deepcopy(first))
            return first
        serializer._clear()   # as a read would leave it: nothing referenced from before
        return copy.deepcopy(first)


_READ_ONCE = _ReadOnce()


class Serializer(_Serializer):
    """pypsrp's `Serializer`, reading a primitive element without serializing it back, an
    answer every host gives alike once per text (`READ_ONCE`), and writing the messages every
    host is sent alike from their templates (`psrp_messages`)."""

    def serialize(self, value: Any, metadata: Any = None, parent: ET.Element | None = None,
                  clear: bool = True) -> Any:
        # a message, as pypsrp's Message.pack asks for it: bytes it sends as they are
        if metadata is None and parent is None and clear:
            made = psrp_messages.TEMPLATES.serialized(value, self)
            if made is not None:
                self._clear()
                return made
        return super().serialize(value, metadata, parent, clear)

    def deserialize(self, element: ET.Element | str, metadata: Any = None,
                    clear: bool = True) -> Any:
        if isinstance(element, str):
            # a message, as pypsrp's Message.unpack reads it
            if (clear and type(metadata) is ObjectMeta and metadata.tag == "Obj"
                    and metadata.object in READ_ONCE and len(element) <= READ_ONCE_LENGTH):
                return _READ_ONCE.get(self, element, metadata)
        else:
            read = _PRIMITIVES.get(element.tag)
            if read is not None:
                if clear:
                    self._clear()
                if metadata is not None and metadata.tag == "*":
                    metadata.tag = element.tag   # as pypsrp does
                return read(self, element)
        return super().deserialize(element, metadata, clear)


class RunspacePool(_RunspacePool):
    """pypsrp's `RunspacePool`, its messages read through `Serializer`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._serializer.__class__ = Serializer   # same object, shared with the fragmenter
