"""The retry policy for transport calls: tenacity, exponential backoff with full jitter.

Only errors marked `transient` (Unreachable, TransportTimeout) are retried, and only for
requests that may be re-sent blindly (`ops.is_idempotent`): a `run_process` whose connection
dropped may have run, so it is never re-sent; its error goes to the caller as it came.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    stop_any,
    wait_random_exponential,
)

from pushinstall.errors import HostError
from pushinstall.remote import ops


def is_transient(error: BaseException) -> bool:
    """True for the errors worth another try."""
    return isinstance(error, HostError) and error.transient


def retry_policy(attempts: int = 4, initial: float = 0.5, maximum: float = 10.0,
                 total: float | None = None) -> Retrying:
    """Up to `attempts` tries in all, waits drawn from [0, initial * 2**n] capped at
    `maximum`, and no new try after `total` seconds (None: no bound); the last error is
    re-raised as it came."""
    stop = stop_after_attempt(attempts)
    if total is not None:
        stop = stop_any(stop, stop_after_delay(total))
    return Retrying(stop=stop, wait=wait_random_exponential(multiplier=initial, max=maximum),
                    retry=retry_if_exception(is_transient), reraise=True)


def call_with_retries(send: Callable[[dict[str, Any]], dict[str, Any]],
                      request: dict[str, Any], policy: Retrying | None = None) -> dict[str, Any]:
    """`send(request)`, retried by `policy` when `request` is idempotent; once otherwise."""
    if not ops.is_idempotent(request):
        return send(request)
    result: dict[str, Any] = (policy or retry_policy())(send, request)
    return result
