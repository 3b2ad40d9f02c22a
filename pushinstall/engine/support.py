"""Small pieces the host pipeline is built from: deadlines, backoff, retries, the apply context."""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_any,
    wait_random_exponential,
)

from pushinstall.engine import secret_files
from pushinstall.errors import HostError
from pushinstall.remote.ops import request, result_of
from pushinstall.secret import Redactor, Secret

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


class Deadline:
    """A point in (monotonic) time; `math.inf` seconds never expires."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds if seconds and seconds > 0 else math.inf

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

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _is_transient(error: BaseException) -> bool:
    return isinstance(error, HostError) and error.transient


def retrying(retries: int, backoff: Backoff, deadline: Deadline) -> Callable[[Callable[[], T]], T]:
    """Call a function, retrying up to `retries` times on transient errors, within `deadline`.

    Anything else (bad credentials, an error answer, a bug) is raised at once. The first try
    runs bare: tenacity's bookkeeping is only paid once something went wrong.
    """
    def stop_at_deadline(_state: Any) -> bool:
        return deadline.expired

    def call(func: Callable[[], T]) -> T:
        try:
            return func()
        except HostError as error:
            if not error.transient or retries <= 0 or deadline.expired:
                raise
        time.sleep(min(backoff.delay(1), deadline.remaining))
        policy = Retrying(
            stop=stop_any(stop_after_attempt(retries), stop_at_deadline),
            wait=wait_random_exponential(multiplier=backoff.initial * 2, max=backoff.maximum),
            retry=retry_if_exception(_is_transient),
            reraise=True,
        )
        return policy(func)

    return call


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


class StepContext:
    """The `ApplyContext` a resource's apply gets: ops on its host within the step's deadline.

    `sent` lists the op names sent, so the engine knows whether a re-run is safe.
    """

    def __init__(self, pipeline: Any, step_deadline: Deadline) -> None:
        self.pipeline = pipeline
        self.step_deadline = step_deadline
        self.host_name: str = pipeline.host.name
        self.sent: list[str] = []

    def _timeout(self) -> float | None:
        limit = self.pipeline.deadline.bound(self.step_deadline.bound(None))
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
        answer = self.pipeline.transport.call(request(op, **args), timeout=timeout)
        result = result_of(answer, self.host_name)
        if op == "remove_file":
            secret_files.discard(self.host_name, str(args.get("path")))
        return result

    def put_file(self, local: Path, remote: str, sha256: str) -> dict[str, Any]:
        """Push a controller file (a temp file, sha256 checked, then moved: safe to redo)."""
        self._timeout()
        self.sent.append("file_chunk")
        result: dict[str, Any] = self.pipeline.transport.put_file(local, remote, sha256)
        return result

    def facts(self, queries: list[dict[str, Any]]) -> dict[str, Any]:
        """A fresh `facts` call -> {id: fact}."""
        result: dict[str, Any] = self.call("facts", queries=queries)
        return result

    def log(self, message: str) -> None:
        """A debug line for this host, secrets masked."""
        LOG.debug("%s: %s", self.host_name, self.pipeline.redactor.redact(message))
