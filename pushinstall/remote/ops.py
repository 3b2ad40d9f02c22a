"""The op protocol: op names, request encoding, answer decoding. See docs/ops.md.

A request is `{"op": NAME, "args": {...}}`, sent as base64 JSON inside a string literal:
`Invoke-PushinstallOp -Request '<base64>'`. The answer is one output line
`PUSHINSTALL-ANSWER:<base64 JSON>`; every other line is ignored.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from pushinstall.errors import RemoteOpFailed
from pushinstall.secret import Redactor

SENTINEL = "PUSHINSTALL-ANSWER:"
AGENT_FUNCTION = "Invoke-PushinstallOp"

OP_NAMES: tuple[str, ...] = (
    "batch",
    "facts",
    "ensure_directory",
    "download",
    "file_begin",
    "file_chunk",
    "file_end",
    "expand_archive",
    "run_process",
    "write_secret",
    "remove_file",
    "set_service",
    "set_registry",
    "reboot",
    "script",
)

FACT_KINDS: tuple[str, ...] = (
    "registry", "file", "service", "product", "pending_reboot", "os", "disk", "tcp",
)

# Ops that may be sent again after a transport error without changing the outcome.
IDEMPOTENT_OPS = frozenset({"facts", "ensure_directory", "file_chunk", "remove_file"})


def request(op: str, **args: Any) -> dict[str, Any]:
    """A request dict for `op`."""
    return {"op": op, "args": args}


def batch(requests: list[dict[str, Any]]) -> dict[str, Any]:
    """One `batch` request carrying several requests, answered in one round trip."""
    return request("batch", requests=requests)


def is_idempotent(req: dict[str, Any]) -> bool:
    """True when `req` may be re-sent blindly after a transport error."""
    if req.get("op") == "batch":
        return all(is_idempotent(r) for r in req.get("args", {}).get("requests", []))
    return req.get("op") in IDEMPOTENT_OPS


def _b64(data: Any) -> str:
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def encode_request(req: dict[str, Any]) -> str:
    """The request as base64 of UTF-8 JSON: quote-free, safe inside a string literal."""
    return _b64(req)


def decode_request(encoded: str) -> dict[str, Any]:
    """Inverse of `encode_request` (the lab's side)."""
    data = json.loads(base64.b64decode(encoded, validate=True).decode("utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("op"), str):
        raise ValueError("a request is a JSON object with a string 'op'")
    data.setdefault("args", {})
    return data


def invocation(req: dict[str, Any]) -> str:
    """The PowerShell line that runs `req` in a session where the agent is defined."""
    return f"{AGENT_FUNCTION} -Request '{encode_request(req)}'"


def encode_answer(answer: dict[str, Any]) -> str:
    """The answer line as the agent prints it (the lab's side)."""
    return SENTINEL + _b64(answer)


def ok(result: Any) -> dict[str, Any]:
    """A success answer."""
    return {"ok": True, "result": result}


def error(error_type: str, message: str) -> dict[str, Any]:
    """An error answer."""
    return {"ok": False, "error": {"type": error_type, "message": message}}


def _quote_output(output: str, redactor: Redactor | None, lines: int = 5) -> str:
    head = [line for line in output.splitlines() if line.strip()][:lines]
    text = " | ".join(head) if head else "(no output)"
    if redactor is not None:
        text = redactor.redact(text)
    return text[:500]


def decode_answer(
    output: str, host: str | None = None, redactor: Redactor | None = None
) -> dict[str, Any]:
    """Find the sentinel line in `output` and decode it; anything else is ignored.

    A missing or unreadable answer is `RemoteOpFailed` quoting the first lines of `output`,
    with secrets masked by `redactor`.
    """
    for line in output.splitlines():
        line = line.strip()
        if not line.startswith(SENTINEL):
            continue
        try:
            answer = json.loads(base64.b64decode(line[len(SENTINEL):], validate=True))
        except ValueError:
            break
        if isinstance(answer, dict) and isinstance(answer.get("ok"), bool):
            return answer
        break
    raise RemoteOpFailed(
        f"no readable answer from the agent; output began: {_quote_output(output, redactor)}",
        host=host,
        hint="is PowerShell 3.0 or later installed, and is the remote shell PowerShell?",
        error_type="NoAnswer",
    )


def result_of(answer: dict[str, Any], host: str | None = None) -> Any:
    """The `result` of a success answer; an error answer raises `RemoteOpFailed`."""
    if answer.get("ok"):
        return answer.get("result")
    err = answer.get("error") or {}
    raise RemoteOpFailed(
        str(err.get("message", "unknown error")),
        host=host,
        error_type=str(err.get("type", "Exception")),
    )


def agent_path() -> Path:
    """Where agent.ps1 lies in the installed package."""
    return Path(__file__).with_name("agent.ps1")


def agent_source() -> str:
    """The text of agent.ps1."""
    return agent_path().read_text(encoding="utf-8")
