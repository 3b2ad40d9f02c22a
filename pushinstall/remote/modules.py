"""Agent modules (issue 12): C# that the target compiles only when a session first needs one
of its ops, so that what every session carries — a compliance check, first of all — stays small.

`changes` (`agent/changes/*.cs`) holds the ops that change a machine. The core answers them
with an error until the module is loaded by the op `module` (`{"name", "source"}`): the core
compiles the source against its own cached DLL, or loads the DLL it cached for that core and
source, and registers the module's ops (docs/ops.md "Modules"). A transport keeps the set of
modules its agent session loaded (a new session starts empty) and passes each request through
`with_modules`: a request that needs a module not loaded yet goes as ONE batch, the `module`
requests first, so loading costs no round trip; `unwrap` gives the request's own answer back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pushinstall.remote import ops

MODULE_OPS: Mapping[str, str] = {
    op: "changes" for op in ("download", "expand_archive", "run_process", "write_secret",
                             "set_service", "set_registry", "reboot")
}

Answer = dict[str, Any]


def source(name: str) -> str:
    """The C# source of module `name`, as it is sent (compact, one compilation unit)."""
    return ops.agent_core_source(name)


def load_request(name: str) -> dict[str, Any]:
    """The `module` request that loads `name` into an agent session."""
    return ops.request("module", name=name, source=source(name))


def needed(request: dict[str, Any]) -> set[str]:
    """The modules `request` (or a request in its batch) needs."""
    if request.get("op") == "batch":
        inner = (request.get("args") or {}).get("requests")
        return set().union(*(needed(r) for r in inner if isinstance(r, dict))) \
            if isinstance(inner, list) else set()
    name = MODULE_OPS.get(str(request.get("op")))
    return {name} if name else set()


def with_modules(request: dict[str, Any],
                 loaded: set[str]) -> tuple[dict[str, Any], Callable[[Answer], Answer]]:
    """`request` as it must go to a session holding `loaded`, and what turns that request's
    answer into the answer to `request`; a module that loaded is added to `loaded`."""
    missing = sorted(needed(request) - loaded)
    if not missing:
        return request, lambda answer: answer
    is_batch = request.get("op") == "batch"
    inner = list(request["args"]["requests"]) if is_batch else [request]
    wrapped = ops.batch([load_request(name) for name in missing] + inner)

    def unwrap(answer: Answer) -> Answer:
        results = answer.get("result")
        if not answer.get("ok") or not isinstance(results, list):
            return answer
        for name, head in zip(missing, results, strict=False):
            if isinstance(head, dict) and head.get("ok"):
                loaded.add(name)
        rest = results[len(missing):]
        return ops.ok(rest) if is_batch else rest[0] if rest else answer

    return wrapped, unwrap


def unwrapped(request: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The inverse of `with_modules` (the lab's side): the `module` requests a batch carries
    ahead of the rest, and the rest as the caller sent it (one request, or a batch)."""
    items = (request.get("args") or {}).get("requests") if request.get("op") == "batch" else None
    if not isinstance(items, list):
        return [], request
    count = 0
    while count < len(items) and isinstance(items[count], dict) \
            and items[count].get("op") == "module":
        count += 1
    if count == 0:
        return [], request
    rest = items[count:]
    return items[:count], rest[0] if len(rest) == 1 and isinstance(rest[0], dict) \
        else ops.batch(rest)
