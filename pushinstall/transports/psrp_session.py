"""The HTTP session under a pypsrp `WSMan`, built as pypsrp builds it, minus the work that
need not be redone for every host and every request (a 1,000-host sweep does it 8,000 times).

- The NTLM keys of an account are derived once per process, not once per connection: pyspnego
  computes the LM and NT hashes of the password each time a context is made, and its LM hash
  is pure-Python DES (~1.5 ms, 7 % of a compliance check's controller CPU). The context is
  handed the hashes as an `NTLMHash` credential (what pyspnego itself makes of an `LM:NT`
  password), followed by the password for the protocols that need it (Kerberos under
  Negotiate): pyspnego takes, for each protocol, the first credential that serves it.
- Proxies come from the transport's settings alone: pypsrp is always told `no_proxy`, so the
  environment's proxy variables are never used, yet requests would look them up (and parse
  `no_proxy`) on every request while `trust_env` is on.
"""

from __future__ import annotations

import functools
from typing import Any

import requests
import spnego
from pypsrp.negotiate import HTTPNegotiateAuth

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
    if (isinstance(auth, HTTPNegotiateAuth) and isinstance(auth.username, str)
            and auth.password and auth.auth_provider in ("negotiate", "ntlm")):
        auth.username = ntlm_credentials(auth.username, auth.password)  # type: ignore[assignment]
        auth.password = None
    return session


def tune_wsman(wsman: Any) -> None:
    """Have a pypsrp `WSMan` build its session (lazily, on the first request, as it does)
    through `tune`."""
    transport = wsman.transport
    build = transport._build_session

    @functools.wraps(build)
    def built() -> requests.Session:
        return tune(build())

    transport._build_session = built
