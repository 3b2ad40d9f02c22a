"""The stdin protocol of the transports that run PowerShell through stdin (WinRS, SSH), and its
inverse for the lab's endpoints.

One PowerShell process per connection: `powershell -NoProfile -NonInteractive -Command -`
(a cmd.exe command line would stop at 8191 characters) reads `session_script` as script text —
the agent as one gzipped line, then the fixed line `Invoke-PushinstallLoop` — and from then on
the agent's loop reads stdin itself, one request a line, as data (`[Console]::In.ReadLine()`,
never parsed as script), and writes one answer line each. The first line it writes is the
session key line, so secret fields are sealed exactly as over PSRP. An empty line ends it.

Windows PowerShell's console host reads `-Command -` input through `Console.In` a character at
a time (`ConsoleHostUserInterface.ReadLineFromFile`), so the loop's ReadLine takes exactly the
lines after the one the host executed.
"""
from __future__ import annotations

import base64
import binascii
import functools
import re

from pushinstall.remote import bootstrap, ops

POWERSHELL_COMMAND = "powershell -NoProfile -NonInteractive -Command -"
# One PowerShell 3.0 line: gunzip the base64 agent text and dot-source it into the session.
_AGENT_LINE_HEAD = (
    ". ([ScriptBlock]::Create((New-Object IO.StreamReader((New-Object "
    "IO.Compression.GZipStream((New-Object IO.MemoryStream(,[Convert]::FromBase64String('"
)
_AGENT_LINE_TAIL = (
    "'))), [IO.Compression.CompressionMode]::Decompress)), [Text.Encoding]::UTF8)).ReadToEnd()))"
)
_AGENT_LINE = re.compile(
    "^" + re.escape(_AGENT_LINE_HEAD) + "([A-Za-z0-9+/=]*)" + re.escape(_AGENT_LINE_TAIL) + "$"
)


@functools.lru_cache(maxsize=4)
def agent_line(agent_source: str) -> str:
    """The one PowerShell line that defines the agent: its text packed as PSRP's bootstrap
    packs it (`bootstrap.packed`), base64."""
    packed = bootstrap.packed(agent_source)
    return _AGENT_LINE_HEAD + base64.b64encode(packed).decode("ascii") + _AGENT_LINE_TAIL


LOOP_FUNCTION = "Invoke-PushinstallLoop"


def session_script(agent_source: str | None = None) -> str:
    """What the controller writes first on a new process's stdin: agent line, loop line."""
    line = agent_line(ops.agent_source() if agent_source is None else agent_source)
    return f"{line}\n{LOOP_FUNCTION}\n"


def request_line(encoded: str) -> str:
    """One request for the loop: its base64 (never empty, no newline in it)."""
    if not encoded or "\n" in encoded:
        raise ValueError("a request line is the non-empty base64 of one request")
    return encoded + "\n"


def agent_of_line(line: str) -> str:
    """Inverse of `agent_line` (the lab's side): the agent source the line defines.

    Raises ValueError when `line` is not an agent line.
    """
    match = _AGENT_LINE.match(line.strip())
    if match is None:
        raise ValueError("the first line does not define the agent")
    try:
        return bootstrap.expand(base64.b64decode(match.group(1), validate=True)).decode("utf-8")
    except (binascii.Error, ValueError) as exc:   # UnicodeDecodeError is a ValueError
        raise ValueError(f"the agent line does not decode: {exc}") from None


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
