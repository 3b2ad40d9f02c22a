"""The stdin protocol of the transports that run PowerShell through stdin (WinRS, SSH), and its
inverse for the lab's endpoints.

One PowerShell process per connection: `powershell -NoProfile -NonInteractive -Command -`
(a cmd.exe command line would stop at 8191 characters) reads `session_script`:

1. the bootstrap line (script): PSRP's bootstrap.ps1, dot-sourced into the session with the
   next two lines as its `Hash` and `Agent` — read by `[Console]::In.ReadLine()` as data,
   never parsed as script;
2. the agent's sha256 (hex);
3. the agent packed (`bootstrap.packed`), base64 — or an empty line: use the copy the target
   cached, verified by its hash as over PSRP;
4. the fixed line `Invoke-PushinstallLoop` (script).

A cached copy that is gone or differs makes the bootstrap line write the MISSING line and end
the process (the loop line is never read): the transport then starts a new process with the
agent. Otherwise the agent's loop reads stdin itself, one request a line, as data, and writes
one answer line each; the first line it writes is the session key line, so secret fields are
sealed exactly as over PSRP. An empty line ends it.

Windows PowerShell's console host reads `-Command -` input through `Console.In` a character at
a time (`ConsoleHostUserInterface.ReadLineFromFile`), so the bootstrap's and the loop's
ReadLine take exactly the lines after the one the host executed.
"""
from __future__ import annotations

import base64
import binascii
import functools

from pushinstall.remote import bootstrap, ops

POWERSHELL_COMMAND = "powershell -NoProfile -NonInteractive -Command -"
LOOP_FUNCTION = "Invoke-PushinstallLoop"


@functools.lru_cache(maxsize=1)
def bootstrap_line() -> str:
    """The first line of every session script: bootstrap.ps1 dot-sourced (its functions land
    in the session) with the two stdin lines after it as `Hash` and `Agent`; its own output
    (the key line, StoreAgent's answer) is dropped, as the loop writes the key line. On the
    MISSING line it writes that line and the process exits."""
    missing = f"'{bootstrap.MISSING}'"
    return ("$PiOut = . {" + bootstrap.script().rstrip("\n") + "} ([Console]::In.ReadLine()) "
            "([Convert]::FromBase64String([Console]::In.ReadLine())); "
            f"if ($PiOut -contains {missing}) {{ [Console]::Out.WriteLine({missing}); exit }}")


def session_script(with_agent: bool, agent_source: str | None = None) -> str:
    """What the controller writes first on a new process's stdin: the bootstrap line, the
    agent's hash, the packed agent when `with_agent` (else an empty line), the loop line."""
    agent = ops.agent_source() if agent_source is None else agent_source
    packed = base64.b64encode(bootstrap.packed(agent)).decode("ascii") if with_agent else ""
    return f"{bootstrap_line()}\n{bootstrap.agent_hash(agent)}\n{packed}\n{LOOP_FUNCTION}\n"


def request_line(encoded: str) -> str:
    """One request for the loop: its base64 (never empty, no newline in it)."""
    if not encoded or "\n" in encoded:
        raise ValueError("a request line is the non-empty base64 of one request")
    return encoded + "\n"


def packed_of_line(line: str) -> bytes:
    """The bytes of the bootstrap's `Agent` line (the lab's side): b"" for an empty line.

    Raises ValueError when it is not base64, as FromBase64String throws.
    """
    try:
        return base64.b64decode(line.strip(), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"the agent line is not base64: {exc}") from None


class Lines:
    """Bytes in, complete lines out (CR LF or LF; decoded as UTF-8)."""

    def __init__(self) -> None:
        self._pending = bytearray()

    def feed(self, data: bytes) -> list[str]:
        """The lines `data` completes, without their line ends."""
        self._pending += data
        *complete, rest = self._pending.split(b"\n")
        self._pending = bytearray(rest)
        return [line.rstrip(b"\r").decode("utf-8", "replace") for line in complete]

    def rest(self) -> str:
        """What came after the last line end."""
        return self._pending.decode("utf-8", "replace")
