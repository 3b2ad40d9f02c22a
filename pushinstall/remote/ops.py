"""The op protocol: op names, request encoding, answer decoding. See docs/ops.md.

A request is `{"op": NAME, "args": {...}}`, sent as base64 JSON: the `-Request` parameter of
`Invoke-PushinstallOp` over PSRP, or the stdin line `Invoke-PushinstallOp -Request '<base64>'`
over WinRS/SSH (`invocation`). The answer is one output line `PUSHINSTALL-ANSWER:<base64 JSON>`;
every other line is ignored. The agent is a C# core (`agent/*.cs`) behind the agent.ps1 shim.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pushinstall.errors import RemoteOpFailed
from pushinstall.remote.winargv import windows_argv_quote as windows_argv_quote
from pushinstall.remote.winargv import windows_argv_split as windows_argv_split
from pushinstall.remote.winargv import windows_command_line as windows_command_line
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
    "registry", "file", "service", "product", "pending_reboot", "os", "disk", "tcp", "ini",
    "winrm_quota", "installer_running",
)

# The pending_reboot fact's signals (docs/ops.md); `sccm_client` only when the query opts in.
PENDING_SIGNALS: tuple[str, ...] = (
    "pending_file_rename", "pending_file_rename2", "component_based_servicing", "windows_update",
    "computer_rename", "update_exe_volatile", "domain_join", "asr_driver_uninstalled",
)

# Ops that may be sent again after a transport error without changing the outcome.
# `download` too: the target writes a temp file and moves it in after the sha256 check, so a
# second try after a refused one (HTTP 503) cannot double anything.
IDEMPOTENT_OPS = frozenset({"facts", "ensure_directory", "file_chunk", "remove_file",
                            "download"})


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


# ---------------------------------------------------------------- schemas


@dataclass(frozen=True)
class Arg:
    """One argument of an op or a fact query: its JSON type and the values it may take.

    `type` is one of `string`, `integer`, `boolean`, `object`, `list`, `string_list`,
    `sha256` (64 hex digits), `base64`, `credential` (`{"username", "password"}`) or `any`.
    """

    type: str
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None


@dataclass(frozen=True)
class OpSchema:
    """The arguments an op (or a fact kind) takes: required and optional, by name."""

    required: Mapping[str, Arg]
    optional: Mapping[str, Arg]

    @functools.cached_property
    def known(self) -> dict[str, Arg]:
        """Every argument, required or optional."""
        return {**self.required, **self.optional}


_STR = Arg("string")
_PATH = Arg("string")
_SECONDS = Arg("integer", minimum=1)
_VIEW = Arg("string", choices=("64", "32"))
REGISTRY_TYPES = ("String", "ExpandString", "DWord", "QWord", "MultiString", "Binary")
START_MODES = ("Automatic", "AutomaticDelayed", "Manual", "Disabled")

OP_SCHEMAS: Mapping[str, OpSchema] = {
    "batch": OpSchema({"requests": Arg("list")}, {}),
    "facts": OpSchema({"queries": Arg("list")}, {}),
    "ensure_directory": OpSchema({"path": _PATH}, {}),
    "download": OpSchema(
        {"source": _STR, "destination": _PATH},
        {"sha256": Arg("sha256"), "credential": Arg("credential"), "timeout_s": _SECONDS,
     "run_as": Arg("string", choices=("session", "system"))},
    ),
    "file_begin": OpSchema(
        {"destination": _PATH, "size": Arg("integer", minimum=0), "sha256": Arg("sha256")}, {}
    ),
    # `data` in a call; `length` in the push stream's request line (remote/receiver.py)
    "file_chunk": OpSchema(
        {"temp_path": _PATH, "offset": Arg("integer", minimum=0)},
        {"data": Arg("base64"), "length": Arg("integer", minimum=0)},
    ),
    "file_end": OpSchema(
        {"temp_path": _PATH, "destination": _PATH, "sha256": Arg("sha256")}, {}
    ),
    "expand_archive": OpSchema({"path": _PATH, "destination": _PATH}, {}),
    "run_process": OpSchema(
        {"path": _PATH},
        {
            "arguments": Arg("string_list"),
            "working_directory": _PATH,
            "timeout_s": _SECONDS,
            "tail_lines": Arg("integer", minimum=0, maximum=10000),
            "log_path": _PATH,
        },
    ),
    "write_secret": OpSchema({"path": _PATH, "content": _STR}, {}),
    "remove_file": OpSchema({"path": _PATH}, {}),
    "set_service": OpSchema(
        {"name": _STR},
        {
            "state": Arg("string", choices=("running", "stopped")),
            "start_mode": Arg("string", choices=START_MODES),
            "timeout_s": _SECONDS,
        },
    ),
    "set_registry": OpSchema(
        {
            "key": _STR,
            "name": _STR,
            "value": Arg("any"),
            "type": Arg("string", choices=REGISTRY_TYPES),
        },
        {"view": _VIEW},
    ),
    "reboot": OpSchema(
        {}, {"delay_s": Arg("integer", minimum=0, maximum=315360000), "reason": _STR}
    ),
    "script": OpSchema({"source": _STR}, {"parameters": Arg("object")}),
}

# Fact queries: every query also has `id` (string) and `kind`.
FACT_SCHEMAS: Mapping[str, OpSchema] = {
    "registry": OpSchema({"key": _STR}, {"name": _STR, "view": _VIEW}),
    "file": OpSchema({"path": _PATH}, {"hash": Arg("boolean")}),
    "service": OpSchema({"name": _STR}, {}),
    "product": OpSchema({}, {"product_id": _STR, "name": _STR}),
    "pending_reboot": OpSchema({}, {"sccm": Arg("boolean")}),
    "os": OpSchema({}, {}),
    "disk": OpSchema({"drive": Arg("string")}, {}),
    "tcp": OpSchema(
        {"host": _STR, "port": Arg("integer", minimum=1, maximum=65535)},
        {"timeout_ms": Arg("integer", minimum=1)},
    ),
    "ini": OpSchema({"path": _PATH, "section": _STR, "key": _STR}, {}),
    "winrm_quota": OpSchema({}, {}),
    "installer_running": OpSchema({}, {}),
}

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_DRIVE = re.compile(r"[A-Za-z]:?\\?")


def _type_ok(arg: Arg, value: Any) -> bool:
    kind = arg.type
    if kind == "any":
        return value is not None
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "object":
        return isinstance(value, dict) and all(isinstance(k, str) for k in value)
    if kind == "list":
        return isinstance(value, list)
    if kind == "string_list":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "sha256":
        return isinstance(value, str) and _HEX64.fullmatch(value) is not None
    if kind == "base64":
        return isinstance(value, str) and _is_base64(value)
    if kind == "credential":
        return (
            isinstance(value, dict)
            and set(value) == {"username", "password"}
            and all(isinstance(v, str) for v in value.values())
        )
    return isinstance(value, str)


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _check_args(where: str, schema: OpSchema, args: Mapping[str, Any]) -> None:
    """Raise ValueError naming the first bad argument. Values are never quoted: some are
    secrets (write_secret content, a share password)."""
    for name in schema.required:
        if args.get(name) is None:
            raise ValueError(f"{where}: missing required argument {name!r}")
    known = schema.known
    for name, value in args.items():
        arg = known.get(name)
        if arg is None:
            expected = ", ".join(sorted(known)) or "none"
            raise ValueError(f"{where}: unknown argument {name!r} (expected: {expected})")
        if value is None and name not in schema.required:
            continue
        if not _type_ok(arg, value):
            raise ValueError(f"{where}: argument {name!r} must be {arg.type}")
        if arg.choices and value not in arg.choices:
            raise ValueError(f"{where}: argument {name!r} must be one of {', '.join(arg.choices)}")
        if arg.minimum is not None and value < arg.minimum:
            raise ValueError(f"{where}: argument {name!r} must be at least {arg.minimum}")
        if arg.maximum is not None and value > arg.maximum:
            raise ValueError(f"{where}: argument {name!r} must be at most {arg.maximum}")


def _check_registry_value(where: str, args: Mapping[str, Any]) -> None:
    value, kind = args["value"], args["type"]
    integer = isinstance(value, int) and not isinstance(value, bool)
    if kind in ("String", "ExpandString"):
        good = isinstance(value, str)
    elif kind == "DWord":
        good = integer and 0 <= value < 2**32
    elif kind == "QWord":
        good = integer and 0 <= value < 2**64
    elif kind == "MultiString":
        good = isinstance(value, list) and all(isinstance(v, str) for v in value)
    else:
        good = isinstance(value, str) and _is_base64(value)
    if not good:
        expected = {"DWord": "an integer 0..2**32-1", "QWord": "an integer 0..2**64-1",
                    "MultiString": "a list of strings", "Binary": "base64"}.get(kind, "a string")
        raise ValueError(f"{where}: a {kind} value must be {expected}")


def _check_queries(where: str, queries: list[Any]) -> None:
    seen: set[str] = set()
    for index, query in enumerate(queries):
        try:
            _check_query(query, seen)
        except _QueryError as error:
            here = f"{where}.queries[{index}]"
            if error.kind:
                here = f"{here} ({error.kind} {query.get('id')!r})"
            raise ValueError(f"{here}{error.args[0]}") from None


class _QueryError(ValueError):
    """What is wrong with one query; the caller names where (built only on an error)."""

    def __init__(self, message: str, kind: str = "") -> None:
        super().__init__(message)
        self.kind = kind


def _check_query(query: Any, seen: set[str]) -> None:
    if not isinstance(query, dict):
        raise _QueryError(": a fact query is an object")
    query_id, kind = query.get("id"), query.get("kind")
    if not isinstance(query_id, str) or not query_id:
        raise _QueryError(": 'id' must be a non-empty string")
    if query_id in seen:
        raise _QueryError(f": duplicate id {query_id!r}")
    seen.add(query_id)
    if not isinstance(kind, str) or kind not in FACT_SCHEMAS:
        raise _QueryError(f": 'kind' must be one of {', '.join(FACT_KINDS)}")
    rest = {k: v for k, v in query.items() if k != "id" and k != "kind"}
    try:
        _check_args("", FACT_SCHEMAS[kind], rest)
    except ValueError as error:
        raise _QueryError(str(error), kind) from None
    if kind == "product" and not (rest.get("product_id") or rest.get("name")):
        raise _QueryError(": a product query needs 'product_id' or 'name'", kind)
    if kind == "disk" and _DRIVE.fullmatch(rest["drive"]) is None:
        raise _QueryError(": 'drive' must be a drive letter like 'C:'", kind)


def validate_request(req: Any, where: str = "request") -> None:
    """Check `req` against `OP_SCHEMAS` (and `FACT_SCHEMAS` for queries), recursing into
    `batch`. Raises ValueError saying where and what is wrong; never quotes a value."""
    if not isinstance(req, dict) or not isinstance(req.get("op"), str):
        raise ValueError(f"{where}: a request is an object with a string 'op'")
    if set(req) - {"op", "args"}:
        raise ValueError(f"{where}: a request has only 'op' and 'args'")
    op = req["op"]
    if op not in OP_SCHEMAS:
        raise ValueError(f"{where}: unknown op {op!r}")
    args = req.get("args", {})
    if not isinstance(args, dict):
        raise ValueError(f"{where} ({op}): 'args' must be an object")
    where = f"{where} ({op})"
    _check_args(where, OP_SCHEMAS[op], args)
    if op == "batch":
        for index, inner in enumerate(args["requests"]):
            validate_request(inner, f"{where}.requests[{index}]")
    elif op == "facts":
        _check_queries(where, args["queries"])
    elif op == "set_registry":
        _check_registry_value(where, args)
    elif op == "file_chunk" and (args.get("data") is None) == (args.get("length") is None):
        raise ValueError(f"{where}: a chunk has 'data' (a call) or 'length' (the push "
                         "stream), exactly one")


# ---------------------------------------------------------------- encoding


_JSON = json.JSONEncoder(ensure_ascii=False, check_circular=False, separators=(",", ":"))


def _b64(data: Any) -> str:
    text = _JSON.encode(data)   # requests and answers are trees: no cycle to look for
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
    """The PowerShell line that runs `req` in a session where the agent is defined (the
    WinRS/SSH stdin form; psrp passes the encoded request as a parameter instead)."""
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
    """Where agent.ps1 (the PowerShell shim) lies in the installed package."""
    return Path(__file__).with_name("agent.ps1")


def agent_core_files() -> list[Path]:
    """The C# files of the agent's core, in a stable order."""
    return sorted(Path(__file__).with_name("agent").glob("*.cs"))


_USING = re.compile(r"^using [A-Za-z0-9_.]+;$")


@functools.lru_cache(maxsize=1)
def agent_core_source() -> str:
    """The agent's C# core as ONE compilation unit, as `Add-Type -TypeDefinition` takes it:
    each file's `using` lines are hoisted to the top (deduplicated), the rest follows."""
    usings: dict[str, None] = {}
    bodies: list[str] = []
    for path in agent_core_files():
        body: list[str] = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if _USING.match(line.strip()):
                usings[line.strip()] = None
            else:
                body.append(line)
        bodies.append("\n".join(body).strip("\n"))
    return "\n".join(usings) + "\n\n" + "\n\n".join(bodies) + "\n"


@functools.lru_cache(maxsize=1)
def agent_source() -> str:
    """The agent's text as it is sent: the C# core in a here-string, then the shim."""
    core = agent_core_source()
    if "\n'@" in core:
        raise ValueError("the C# core may not hold a line starting with '@")
    shim = agent_path().read_text(encoding="utf-8")
    return f"$PushinstallAgentCore = @'\n{core}'@\n\n{shim}"
