"""The op protocol: op names, request encoding, answer decoding. See docs/ops.md.

A request is `{"op": NAME, "args": {...}}`, sent as base64 JSON: the `-Request` parameter of
`Invoke-PushinstallOp` over PSRP, or one stdin line read as data by the agent's loop over
WinRS/SSH (remote/stdin.py); `invocation` is the line form the lab's hosts answer. The answer
is one output line `PUSHINSTALL-ANSWER:<base64 JSON>`; every other line is ignored. The agent
is a C# core (`agent/*.cs`, and the module `agent/changes/*.cs`: remote/modules.py) behind
the agent.ps1 shim.
"""

from __future__ import annotations

import base64
import functools
import gzip
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pushinstall.argspec import ANY as ANY_VALUE
from pushinstall.argspec import (
    BASE64,
    BOOLEAN,
    CREDENTIAL,
    INTEGER,
    LIST,
    OBJECT,
    PATH,
    SHA256,
    STRING,
    STRING_LIST,
    Arg,
    by_name,
    is_base64,
    json_type_ok,
)
from pushinstall.errors import RemoteOpFailed
from pushinstall.remote import compact
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
    "module",
)

# The agent's modules (remote/modules.py): agent/<name>/*.cs.
MODULE_NAMES: tuple[str, ...] = ("changes",)

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


def _need(name: str, type_word: str = STRING, **rest: Any) -> Arg:
    """A required argument."""
    return Arg(name, type_word, required=True, **rest)


_TIMEOUT = Arg("timeout_s", INTEGER, minimum=1)
_VIEW = Arg("view", choices=("64", "32"))
REGISTRY_TYPES = ("String", "ExpandString", "DWord", "QWord", "MultiString", "Binary")
START_MODES = ("Automatic", "AutomaticDelayed", "Manual", "Disabled")

# The arguments of each op (argspec.Arg: one mechanism with the resources' schemas).
OP_SCHEMAS: Mapping[str, tuple[Arg, ...]] = {
    "batch": (_need("requests", LIST),),
    "facts": (_need("queries", LIST),),
    "ensure_directory": (_need("path", PATH),),
    "download": (_need("source"), _need("destination", PATH), Arg("sha256", SHA256),
                 Arg("credential", CREDENTIAL, secret=True), _TIMEOUT,
                 Arg("run_as", choices=("session", "system"))),
    "file_begin": (_need("destination", PATH), _need("size", INTEGER, minimum=0),
                   _need("sha256", SHA256)),
    # `data` in a call; `length` in the push stream's request line (remote/receiver.py)
    "file_chunk": (_need("temp_path", PATH), _need("offset", INTEGER, minimum=0),
                   Arg("data", BASE64), Arg("length", INTEGER, minimum=0)),
    "file_end": (_need("temp_path", PATH), _need("destination", PATH), _need("sha256", SHA256)),
    "expand_archive": (_need("path", PATH), _need("destination", PATH)),
    "run_process": (_need("path", PATH), Arg("arguments", STRING_LIST),
                    Arg("working_directory", PATH), _TIMEOUT,
                    Arg("tail_lines", INTEGER, minimum=0, maximum=10000), Arg("log_path", PATH)),
    "write_secret": (_need("path", PATH), _need("content", secret=True)),
    "remove_file": (_need("path", PATH),),
    "set_service": (_need("name"), Arg("state", choices=("running", "stopped")),
                    Arg("start_mode", choices=START_MODES), _TIMEOUT),
    "set_registry": (_need("key"), _need("name"), _need("value", ANY_VALUE),
                     _need("type", choices=REGISTRY_TYPES), _VIEW),
    "reboot": (Arg("delay_s", INTEGER, minimum=0, maximum=315360000), Arg("reason")),
    "script": (_need("source"), Arg("parameters", OBJECT)),
    # C# the core compiles against itself (remote/modules.py): code, like the agent
    "module": (_need("name", choices=MODULE_NAMES), _need("source")),
}

# Fact queries: every query also has `id` (string) and `kind`.
FACT_SCHEMAS: Mapping[str, tuple[Arg, ...]] = {
    "registry": (_need("key"), Arg("name"), _VIEW),
    "file": (_need("path", PATH), Arg("hash", BOOLEAN)),
    "service": (_need("name"),),
    "product": (Arg("product_id"), Arg("name")),
    "pending_reboot": (Arg("sccm", BOOLEAN),),
    "os": (),
    "disk": (_need("drive"),),
    "tcp": (_need("host"), _need("port", INTEGER, minimum=1, maximum=65535),
            Arg("timeout_ms", INTEGER, minimum=1)),
    "ini": (_need("path", PATH), _need("section"), _need("key")),
    "winrm_quota": (),
    "installer_running": (),
}
_OP_ARGS = {op: by_name(schema) for op, schema in OP_SCHEMAS.items()}
_FACT_ARGS = {kind: by_name(schema) for kind, schema in FACT_SCHEMAS.items()}

_DRIVE = re.compile(r"[A-Za-z]:?\\?")


def _check_args(where: str, known: Mapping[str, Arg], args: Mapping[str, Any]) -> None:
    """Raise ValueError naming the first bad argument of `known` (an op's or a fact kind's,
    by name). Values are never quoted: some are secrets (write_secret content, a share
    password)."""
    for arg in known.values():
        if arg.required and args.get(arg.name) is None:
            raise ValueError(f"{where}: missing required argument {arg.name!r}")
    for name, value in args.items():
        if name not in known:
            expected = ", ".join(sorted(known)) or "none"
            raise ValueError(f"{where}: unknown argument {name!r} (expected: {expected})")
        arg = known[name]
        if value is None and not arg.required:
            continue
        if not json_type_ok(arg.type, value):
            json_type = STRING if arg.type == PATH else arg.type   # a path is a JSON string
            raise ValueError(f"{where}: argument {name!r} must be {json_type}")
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
        good = isinstance(value, str) and is_base64(value)
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
        _check_args("", _FACT_ARGS[kind], rest)
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
    _check_args(where, _OP_ARGS[op], args)
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


# Below PACK_MIN bytes of JSON a gzip header costs more than it saves; above PACK_MAX it is a
# file chunk, base64 of an installer that is compressed already (not worth the CPU).
PACK_MIN, PACK_MAX = 256, 64 * 1024


def encode_request(req: dict[str, Any], pack: bool = False) -> str:
    """The request as base64 of UTF-8 JSON: quote-free, safe inside a string literal. With
    `pack`, of its gzip instead when that is shorter and the request not a big chunk (the agent
    reads both: a gzip stream starts with 1f 8b, JSON never does)."""
    if not pack:
        return _b64(req)
    data = _JSON.encode(req).encode("utf-8")
    if PACK_MIN <= len(data) <= PACK_MAX:
        packed = gzip.compress(data, 9, mtime=0)
        data = packed if len(packed) < len(data) else data
    return base64.b64encode(data).decode("ascii")


def request_bytes(encoded: str) -> bytes:
    """The UTF-8 JSON an encoded request holds, gunzipped when packed. ValueError when it is
    not base64 (of gzip)."""
    data = base64.b64decode(encoded, validate=True)
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise ValueError(f"the packed request does not expand: {exc}") from None
    return data


def decode_request(encoded: str) -> dict[str, Any]:
    """Inverse of `encode_request` (the lab's side)."""
    data = json.loads(request_bytes(encoded).decode("utf-8"))
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


def agent_core_files(module: str | None = None) -> list[Path]:
    """The C# files of the agent's core (or of one of its modules, `agent/<module>/`), in a
    stable order."""
    folder = Path(__file__).with_name("agent")
    return sorted((folder / module if module else folder).glob("*.cs"))


_USING = re.compile(r"^using [A-Za-z0-9_.]+;$")


@functools.lru_cache(maxsize=4)
def agent_core_source(module: str | None = None) -> str:
    """The agent's C# core (or one of its modules) as ONE compilation unit, as `Add-Type
    -TypeDefinition` takes it: each file's `using` lines are hoisted to the top (deduplicated),
    the rest follows, without comments and indentation (`compact.csharp`: this is what crosses
    the wire)."""
    usings: dict[str, None] = {}
    bodies: list[str] = []
    for path in agent_core_files(module):
        body: list[str] = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if _USING.match(line.strip()):
                usings[line.strip()] = None
            else:
                body.append(line)
        bodies.append("\n".join(body).strip("\n"))
    return compact.csharp("\n".join(usings) + "\n\n" + "\n\n".join(bodies) + "\n")


def agent_core_held() -> str:
    """The core as the shim holds it in `$PushinstallAgentCore`, whose sha256 names its
    cached DLL: the here-string of `agent_source()` without the line break before its
    closing `'@`, which a PowerShell here-string never includes (about_Quoting_Rules)."""
    return agent_core_source().removesuffix("\n")


@functools.lru_cache(maxsize=1)
def agent_source() -> str:
    """The agent's text as it is sent: the C# core in a here-string, then the shim (both
    compact: no comments, no indentation)."""
    core = agent_core_source()
    if "\n'@" in core:
        raise ValueError("the C# core may not hold a line starting with '@")
    shim = compact.powershell(agent_path().read_text(encoding="utf-8"))
    return f"$PushinstallAgentCore = @'\n{core}'@\n\n{shim}"
