"""Small pieces the host pipeline is built from: deadlines, backoff, the one retry helper, the
host's link (its transport for the run) and the apply context."""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from tenacity import RetryCallState, Retrying, retry_base, retry_if_exception, retry_if_result

from pushinstall.engine import secret_files
from pushinstall.errors import HostError
from pushinstall.model import Host, Status
from pushinstall.remote.ops import request, result_of
from pushinstall.secret import Redactor, Secret
from pushinstall.transports.base import Transport, opened

LOG = logging.getLogger("pushinstall.engine")
T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: attempt n waits up to initial * 2**n, capped."""

    initial: float = 1.0
    maximum: float = 30.0

    def delay(self, attempt: int) -> float:
        """A random wait before try number `attempt` (1-based)."""
        return random.uniform(0, min(self.maximum, self.initial * 2 ** max(attempt - 1, 0)))


class Flow(Enum):
    """What the host's pipeline does after a step."""

    NEXT = "next"                      # go on with the next step
    STOP = "stop"                      # the step failed: no later step runs
    REBOOT_PENDING = "reboot_pending"  # a restart is due and not done (or after_reboot: stop)


class Deadline:
    """A point in (monotonic) time, `seconds` from now; None or `math.inf` never expires, and
    0 (or less) has already passed."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = math.inf if seconds is None else seconds
        self.at = time.monotonic() + max(self.seconds, 0.0)

    @property
    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.at - time.monotonic())

    @property
    def expired(self) -> bool:
        """True once the deadline has passed."""
        return self.remaining <= 0

    def bound(self, timeout: float | None) -> float | None:
        """`timeout` cut down to what is left; None when neither bounds anything."""
        limit = min(timeout if timeout is not None else math.inf, self.remaining)
        return None if math.isinf(limit) else limit


class HostAbort(Exception):
    """Ends a host's pipeline with `status` (e.g. failed after a reboot timeout)."""

    def __init__(self, status: Status, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def is_transient(error: BaseException) -> bool:
    """True for an error worth another try (a dropped connection, a timeout, HTTP 503)."""
    return isinstance(error, HostError) and error.transient


@dataclass(frozen=True)
class RetryPolicy:
    """The one retry helper (tenacity): connect, resendable calls, a step's apply and the wait
    for a rebooted host all retry through `run`, with the same backoff, within `deadline`."""

    retries: int
    backoff: Backoff
    deadline: Deadline

    def run(self, func: Callable[[], T], *, tries: int | None = None,
            retry_on: Callable[[BaseException], bool] = is_transient,
            until: Callable[[T], bool] | None = None) -> T:
        """Call `func` until it returns, at most `tries` times (default 1 + `retries`) within
        the deadline; with `until`, until it returns a result `until` accepts, for as long as
        the deadline allows (one try always follows the deadline's wait).

        An exception `retry_on` refuses is raised at once, the last one when the tries run
        out; a result `until` still refuses at the end raises `tenacity.RetryError`. The first
        try runs bare: tenacity's bookkeeping (~0.1 ms a call) is paid only once it failed."""
        limit = 1 + max(self.retries, 0) if tries is None else tries
        forever = until is not None
        try:
            result = func()
        except BaseException as error:
            if not retry_on(error) or (not forever and (limit <= 1 or self.deadline.expired)):
                raise
        else:
            if until is None or until(result):
                return result
        time.sleep(min(self.backoff.delay(1), self.deadline.remaining))

        def stop(state: RetryCallState) -> bool:   # tenacity counts from the second try
            number = state.attempt_number + 1
            if forever:
                return self.deadline.expired and number >= 2
            return number >= limit or self.deadline.expired

        def wait(state: RetryCallState) -> float:
            return min(self.backoff.delay(state.attempt_number + 1), self.deadline.remaining)

        retry: retry_base = retry_if_exception(retry_on)
        if until is not None:
            retry = retry | retry_if_result(lambda result: not until(result))
        policy = Retrying(stop=stop, wait=wait, retry=retry, reraise=True)
        return policy(func)


def collect_secrets(redactor: Redactor, *values: Any) -> None:
    """Feed every `Secret` found in `values` (nested dicts and lists) to `redactor`."""
    stack = list(values)
    while stack:
        value = stack.pop()
        if isinstance(value, Secret):
            redactor.add(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend(value)


def expected_found(diff: str) -> str:
    """`"svc 'x': Stopped -> Running"` as `"svc 'x': expected Running, found Stopped"`."""
    first = diff.strip().splitlines()[0] if diff.strip() else ""
    before, arrow, after = first.rpartition(" -> ")
    if not arrow:
        return f"still differs: {diff}" if diff else ""
    prefix, colon, found = before.rpartition(": ")
    head = f"{prefix}: " if colon else ""
    return f"{head}expected {after}, found {found if colon else before}"


class HostLink:
    """One host's connection for a run: the transport (opened again after a reboot), the
    host deadline, the retry policy and the redactor. Steps and the reboot wait use it."""

    def __init__(self, host: Host, factory: Callable[[Host], Transport], retry: RetryPolicy,
                 redactor: Redactor) -> None:
        self.host = host
        self.factory = factory
        self.retry = retry
        self.deadline = retry.deadline
        self.redactor = redactor
        self.transport: Transport | None = None

    def open_once(self) -> Transport:
        """One new transport to the host, opened (closed again when opening fails)."""
        return opened(self.factory(self.host))

    def connect(self) -> None:
        """Open the host's transport, retrying transient errors."""
        self.transport = self.retry.run(self.open_once)

    def call(self, req: dict[str, Any], timeout: float | None = None, *,
             resend: bool = False) -> Any:
        """Send `req` within the host deadline; its result, or `RemoteOpFailed`. With `resend`
        (only for a request that is safe to send twice) transient errors are retried."""
        transport = self.transport
        if transport is None:
            raise HostError("not connected", host=self.host.name)
        limit = self.deadline.bound(timeout)
        if resend:
            answer = self.retry.run(lambda: transport.call(req, timeout=limit))
        else:
            answer = transport.call(req, timeout=limit)
        return result_of(answer, self.host.name)

    def put_file(self, local: Path, remote: str, sha256: str) -> dict[str, Any]:
        """Push a controller file to the host (the transport's push, sha256 checked)."""
        if self.transport is None:
            raise HostError("not connected", host=self.host.name)
        result: dict[str, Any] = self.transport.put_file(local, remote, sha256)
        return result

    def close(self) -> None:
        """Close the transport, if open."""
        if self.transport is not None:
            self.transport.close()
            self.transport = None


class StepContext:
    """The `ApplyContext` a resource's apply gets: ops on its host within the step's deadline.

    `sent` lists the op names sent, so the engine knows whether a re-run is safe.
    """

    def __init__(self, link: HostLink, step_deadline: Deadline) -> None:
        self.link = link
        self.step_deadline = step_deadline
        self.host_name: str = link.host.name
        self.sent: list[str] = []

    def _timeout(self) -> float | None:
        limit = self.link.deadline.bound(self.step_deadline.bound(None))
        if limit is not None and limit <= 0:
            raise HostError(f"step timeout ({self.step_deadline.seconds:g}s) passed",
                            host=self.host_name)
        return limit

    def call(self, op: str, **args: Any) -> Any:
        """Send one op; return its result; an error answer raises `RemoteOpFailed`."""
        timeout = self._timeout()
        self.sent.append(op)
        if op == "write_secret":   # noted first: a stall after it must not hide the file
            secret_files.add(self.host_name, str(args.get("path")))
        result = self.link.call(request(op, **args), timeout)
        if op == "remove_file":
            secret_files.discard(self.host_name, str(args.get("path")))
        return result

    def put_file(self, local: Path, remote: str, sha256: str) -> dict[str, Any]:
        """Push a controller file (a temp file, sha256 checked, then moved: safe to redo)."""
        self._timeout()
        self.sent.append("file_chunk")
        return self.link.put_file(local, remote, sha256)

    def facts(self, queries: list[dict[str, Any]]) -> dict[str, Any]:
        """A fresh `facts` call -> {id: fact}."""
        result: dict[str, Any] = self.call("facts", queries=queries)
        return result

    def log(self, message: str) -> None:
        """A debug line for this host, secrets masked."""
        LOG.debug("%s: %s", self.host_name, self.link.redactor.redact(message))
