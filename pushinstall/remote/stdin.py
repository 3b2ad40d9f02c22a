"""The stdin framing of the transports that start one PowerShell per call (WinRS, SSH), and
its inverse for the lab's endpoints: the agent as one gzipped line, then the invocation line.

`powershell -NoProfile -NonInteractive -Command -` reads its script from stdin; a cmd.exe
command line would stop at 8191 characters.
"""

from __future__ import annotations

import base64
import binascii
import functools
import gzip
import re
from typing import Any

from pushinstall.remote import ops

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
    """The one PowerShell line that defines the agent (cached: gzip costs ~5 ms)."""
    packed = gzip.compress(agent_source.encode("utf-8"), compresslevel=9, mtime=0)
    return _AGENT_LINE_HEAD + base64.b64encode(packed).decode("ascii") + _AGENT_LINE_TAIL


def stdin_script(req: dict[str, Any], agent_source: str | None = None) -> str:
    """What the controller writes on PowerShell's stdin for `req`: agent line, invocation line."""
    line = agent_line(ops.agent_source() if agent_source is None else agent_source)
    # The trailing blank line makes sure PowerShell's line reader runs the last statement.
    return f"{line}\n{ops.invocation(req)}\n\n"


def split_stdin_script(text: str) -> tuple[str, str]:
    """Inverse of `stdin_script` (the lab's side): `(agent_source, invocation_line)`.

    Raises ValueError when `text` is not exactly an agent line followed by one more line.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) != 2:
        raise ValueError(f"expected an agent line and an invocation line, got {len(lines)} lines")
    match = _AGENT_LINE.match(lines[0])
    if match is None:
        raise ValueError("the first line does not define the agent")
    try:
        packed = base64.b64decode(match.group(1), validate=True)
        return gzip.decompress(packed).decode("utf-8"), lines[1]
    except (binascii.Error, OSError, EOFError, UnicodeDecodeError) as exc:
        raise ValueError(f"the agent line does not decode: {exc}") from None
