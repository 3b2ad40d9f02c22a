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
"""

from __future__ import annotations

import functools
from typing import Any

import requests
import spnego
from pypsrp._utils import get_hostname
from pypsrp.complex_objects import Pipeline
from pypsrp.negotiate import HTTPNegotiateAuth
from pypsrp.powershell import PowerShell as _PowerShell

# pyspnego's own derivation, so the keys are the ones its Password credential would give
from spnego._ntlm_raw.crypto import lmowfv1, ntowfv1


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
    auth = session.auth
    if (type(auth) is HTTPNegotiateAuth and isinstance(auth.username, str)
            and auth.password and auth.auth_provider in ("negotiate", "ntlm")):
        auth.username = ntlm_credentials(auth.username, auth.password)  # type: ignore[assignment]
        auth.password = None
        auth.__class__ = EagerNegotiateAuth   # same settings; the first token goes at once
    return session


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
