"""The one exception tree of pushinstall, and the exit code each maps to.

```
PushinstallError            exit 1 (a bug, unless a subclass says otherwise)
├── InputError              exit 5: bad inventory, playbook, option; carries a Location
├── LockHeld                exit 3: another run on the same inventory + playbook is going
└── HostError               something went wrong with one host; never stops the others
    ├── TransportError      the connection itself failed (base of the next four)
    │   ├── Unreachable         refused, reset, DNS, 503: transient, retried
    │   ├── AuthenticationFailed  401 / bad credentials: never retried
    │   ├── ShellRefused        a WinRS cmd shell or command refused (policy): never retried
    │   └── TransportTimeout    connect or read timeout: transient, retried
    └── RemoteOpFailed      the target answered an error, or no readable answer
```

Transports map their library's exceptions into this tree once, at the boundary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

EXIT_OK = 0
EXIT_BUG = 1
EXIT_HOST_FAILED = 2
EXIT_LOCKED = 3
EXIT_UNREACHABLE = 4
EXIT_INVALID_INPUT = 5
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143   # SIGTERM (128 + 15), handled as Ctrl-C is
_TRANSIENT_HTTP = re.compile(r"\bHTTP (?:408|429|502|503|504)\b")


@dataclass(frozen=True)
class Location:
    """A place in an input file; line and column are 1-based."""

    path: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


class PushinstallError(Exception):
    """Base of every error pushinstall raises on purpose."""

    exit_code = EXIT_BUG


class InputError(PushinstallError):
    """Invalid input: printed as `path:line:col: message (expected)`, exit code 5."""

    exit_code = EXIT_INVALID_INPUT

    def __init__(self, message: str, location: Location | None = None, expected: str | None = None):
        self.message = message
        self.location = location
        self.expected = expected
        super().__init__(str(self))

    def __str__(self) -> str:
        text = self.message
        if self.expected:
            text = f"{text} ({self.expected})"
        if self.location is not None:
            text = f"{self.location}: {text}"
        return text


class LockHeld(PushinstallError):
    """Another run holds this inventory + playbook's lock (and --wait-lock ran out); exit 3."""

    exit_code = EXIT_LOCKED


class HostError(PushinstallError):
    """A failure that concerns one host. `hint` tells a person what to check."""

    exit_code = EXIT_HOST_FAILED
    transient = False

    def __init__(self, message: str, host: str | None = None, hint: str | None = None):
        self.message = message
        self.host = host
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.host}: {self.message}" if self.host else self.message
        if self.hint:
            text = f"{text} (hint: {self.hint})"
        return text


class TransportError(HostError):
    """The connection to a host failed in a way not covered by a subclass."""

    exit_code = EXIT_UNREACHABLE


class Unreachable(TransportError):
    """The host did not answer: refused, reset, name not found, HTTP 503. Transient."""

    transient = True


class AuthenticationFailed(TransportError):
    """The host refused the credentials. Never retried."""


class ShellRefused(TransportError):
    """The WinRM service refused a WinRS cmd shell or command (access denied, or remote
    shells turned off by policy): not transient, the same answer comes every time."""


class TransportTimeout(TransportError):
    """Connect or read timeout. Transient."""

    transient = True


class RemoteOpFailed(HostError):
    """The target answered an error for an op, or an answer that could not be read.

    `error_type` is the op error's `type` (see docs/ops.md), e.g. `NotFound`, `HashMismatch`.
    """

    def __init__(
        self,
        message: str,
        host: str | None = None,
        hint: str | None = None,
        error_type: str = "Exception",
    ):
        self.error_type = error_type
        # A download the server refused for now (503, 429, a gateway timeout) is transient,
        # as a WinRM 503 is: retried under the same policy. The agent and the lab both say
        # `HTTP <status> ...` (docs/ops.md).
        self.transient = error_type == "DownloadFailed" and bool(_TRANSIENT_HTTP.search(message))
        super().__init__(message, host=host, hint=hint)


BUG_HINT = "a bug in pushinstall, not in the host: please report it with this message"


def internal_error(error: BaseException) -> str:
    """The one-line message a host fails with when pushinstall itself broke on it: the
    exception's type and text (no traceback) and a please-report hint."""
    import traceback

    detail = traceback.format_exception_only(type(error), error)[-1].strip()
    return f"internal error: {detail} (hint: {BUG_HINT})"
