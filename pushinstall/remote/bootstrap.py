"""How the agent reaches a target (issue 12): a short bootstrap that defines it from a gzipped
copy sent with the first request, or from the copy the target cached on an earlier contact.

Transport-neutral: a transport runs `script()` (bootstrap.ps1) with `parameters(...)` — data,
never pasted into the script; over WinRS/SSH as stdin lines, `remote/stdin.py` — and reads the
output lines: `missing(output)` says the target's cached copy is gone or differs (nothing ran;
send again `with_agent`), otherwise the key line (`sealing.public_key_of`) and, when a request
went along, its answer line follow.
`expand` is the inverse for the lab's endpoints, which check what came as the bootstrap would.

`Seen` is the controller's memory of which agent a target already holds, so that a later run
sends only the hash: one file per endpoint under the state dir holding the agent's sha256.
It is only a guess — the target checks the hash itself, and a wrong guess costs one more
round trip, never a wrong agent.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import re
from pathlib import Path

import zopfli.gzip

from pushinstall import paths
from pushinstall.remote import compact, ops

MISSING = "PUSHINSTALL-AGENT-MISSING"
# Where the target keeps its copies: bootstrap.ps1's $env:ProgramFiles\pushinstall\cache on a
# 64-bit session (the lab models this path).
CACHE_DIR = "C:\\Program Files\\pushinstall\\cache"
_HEX64 = re.compile(r"[0-9a-f]{64}")


@functools.lru_cache(maxsize=1)
def script() -> str:
    """The bootstrap's PowerShell, compact and on one line (it is sent on every run)."""
    return compact.powershell_line(Path(__file__).with_name("bootstrap.ps1").read_text("utf-8"))


def agent_hash(agent: str | None = None) -> str:
    """sha256 (lowercase hex) of the agent's UTF-8 text."""
    return _hash(ops.agent_source() if agent is None else agent)


@functools.lru_cache(maxsize=4)
def _hash(agent: str) -> str:
    return hashlib.sha256(agent.encode("utf-8")).hexdigest()


@functools.lru_cache(maxsize=4)
def packed(agent: str) -> bytes:
    """Agent text gzipped, the one way it is packed: the bootstrap's `Agent` parameter (a byte
    array: CLIXML `<BA>`, base64 on the wire once), the bootstrap's `Agent` line over WinRS/SSH
    (base64) and the push receiver's core. Zopfli writes the gzip format .NET's GZipStream
    reads, 4% smaller than zlib's level 9 (~0.1 s, once per process; more iterations gain a
    few bytes for twice the time); the same bytes every time."""
    data: bytes = zopfli.gzip.compress(agent.encode("utf-8"), numiterations=5)
    return data


def parameters(with_agent: bool, request: str | None = None,
               agent: str | None = None) -> dict[str, str | bytes]:
    """The bootstrap's parameters: the agent's hash, the packed agent when `with_agent`, and
    an encoded request to run when given."""
    text = ops.agent_source() if agent is None else agent
    values: dict[str, str | bytes] = {"Hash": agent_hash(text)}
    if with_agent:
        values["Agent"] = packed(text)
    if request is not None:
        values["Request"] = request
    return values


def missing(output: str) -> bool:
    """True when the bootstrap answered that the target holds no copy with that hash."""
    return any(line.strip() == MISSING for line in output.splitlines())


def expand(packed_agent: bytes) -> bytes:
    """The bytes a packed agent expands to, as the bootstrap's GZipStream gives them (the
    lab's side). ValueError when it is not gzip."""
    try:
        return gzip.decompress(packed_agent)
    except (OSError, EOFError) as exc:
        raise ValueError(f"the agent does not expand: {exc}") from None


def valid_hash(value: str) -> bool:
    """True for 64 lowercase hex digits (what the bootstrap accepts as Hash)."""
    return _HEX64.fullmatch(value) is not None


class Seen:
    """Which agent each endpoint held when last contacted, kept under the state dir."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or paths.state_dir() / "agents"

    def _file(self, endpoint: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9._-]", lambda m: f"%{ord(m.group()):02X}", endpoint)
        return self.directory / f"{safe}.sha256"

    def holds(self, endpoint: str, sha256: str) -> bool:
        """True when `endpoint` held the agent `sha256` at the last contact."""
        try:
            return self._file(endpoint).read_text(encoding="ascii").strip() == sha256
        except (OSError, UnicodeDecodeError):
            return False

    def remember(self, endpoint: str, sha256: str | None) -> None:
        """Record that `endpoint` holds `sha256` (None: forget it). Never raises: the memory
        only saves bytes."""
        path = self._file(endpoint)
        with contextlib.suppress(OSError):
            if sha256 is None:
                path.unlink(missing_ok=True)
            else:
                paths.write_atomic(path, sha256 + "\n")
