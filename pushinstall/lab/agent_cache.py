"""The bootstrap on a lab host (remote/bootstrap.ps1 and the shim's `Import-PiCore`), on the
host's simulated file system, so a second run finds what the first left and a changed file is
caught by its hash as the target would catch it.

- The agent: with `Agent` the text is what that parameter (a byte array) really expands to
  (gzip), else the cached `<hash>.ps1`; either way its sha256 must be `Hash`, or the
  answer is the MISSING line and nothing runs (an `Hash` that is not 64 lowercase hex
  digits can match nothing, and names no file). A lab host
  runs only this version's agent (`ops.agent_source()`); a sent agent is stored in the cache.
- The compiled core: `<sha256 of the core's source>-<sha256 of the DLL>.dll`, loaded when the
  file's bytes hash to its name; otherwise "compiled" anew — a simulated DLL whose bytes differ
  each time, as csc's do — and stored, replacing the other DLLs of that source.
Both files are written with the secret flag, the lab's model of the SYSTEM + Administrators ACL.

Modules (remote/modules.py): a session's agent answers a module's ops only once the module is
loaded; `refusal` is what the lab's endpoints answer a request that uses one before (a request
that loads it first, in its batch, is fine).
"""

from __future__ import annotations

import hashlib
import ntpath
import uuid
from dataclasses import dataclass
from typing import Any

from pushinstall.lab.fs import FileSystem
from pushinstall.remote import bootstrap, modules, ops

ASSEMBLY_HEADER = b"PUSHINSTALL-LAB-ASSEMBLY\n"


@dataclass(frozen=True)
class Defined:
    """What the bootstrap did: `error` (the agent was not defined), `missing` (the MISSING
    line), else defined, with `compiled` telling whether the core had to be compiled."""

    error: str = ""
    missing: bool = False
    compiled: bool = False


def agent_path(sha256: str) -> str:
    """Where the target caches the agent whose text has this sha256."""
    return ntpath.join(bootstrap.CACHE_DIR, f"{sha256}.ps1")


def core_hash() -> str:
    """sha256 of the core's source, as the shim (and the push receiver) computes it: of the
    text `$PushinstallAgentCore` holds (`ops.agent_core_held()`)."""
    return hashlib.sha256(ops.agent_core_held().encode("utf-8")).hexdigest()


def cached_core(fs: FileSystem) -> bool:
    """True when the cache holds a core DLL whose bytes hash to its name (what the push
    receiver loads instead of compiling)."""
    source = core_hash()
    return any(ntpath.basename(path) == f"{source}-{hashlib.sha256(fs.read(path)).hexdigest()}.dll"
               for path in assemblies(fs, source))


def define(fs: FileSystem, agent_hash: str, packed: bytes) -> Defined:
    """Run the bootstrap's definition steps on `fs` (see the module docstring)."""
    data: bytes | None = None
    if packed:
        try:
            data = bootstrap.expand(packed)
        except ValueError as exc:
            return Defined(error=f"Exception calling \"CopyTo\": {exc}")
    elif bootstrap.valid_hash(agent_hash) and fs.is_file(agent_path(agent_hash)):
        data = fs.read(agent_path(agent_hash))
    if data is None or hashlib.sha256(data).hexdigest() != agent_hash:
        return Defined(missing=True)
    if data.decode("utf-8", "replace") != ops.agent_source():
        return Defined(error="The agent sent is not this version's agent.ps1")
    if packed:
        _store(fs, agent_path(agent_hash), data)
    return Defined(compiled=_import_core(fs))


def assemblies(fs: FileSystem, source: str) -> list[str]:
    """The cached DLL paths of the core with source hash `source`."""
    prefix = ntpath.join(bootstrap.CACHE_DIR, f"{source}-").lower()
    return [entry["path"] for key, entry in fs.files.items()
            if key.startswith(prefix) and key.endswith(".dll")]


def _import_core(fs: FileSystem) -> bool:
    """Load the cached core, or compile and cache it; True when it was compiled."""
    source = core_hash()
    if cached_core(fs):
        return False
    dll = ASSEMBLY_HEADER + f"{source}\n{uuid.uuid4().hex}\n".encode("ascii")
    for stale in assemblies(fs, source):
        fs.remove(stale)
    _store(fs, ntpath.join(bootstrap.CACHE_DIR,
                           f"{source}-{hashlib.sha256(dll).hexdigest()}.dll"), dll)
    return True


def _store(fs: FileSystem, path: str, data: bytes) -> None:
    fs.make_dirs(bootstrap.CACHE_DIR)
    fs.write(path, data, secret=True)


def refusal(request: dict[str, Any], loaded: set[str]) -> dict[str, Any] | None:
    """None when a session holding the modules `loaded` may run `request` (the modules it loads
    are added), else the error answer: it uses an op of a module not loaded before it."""
    items = request.get("args", {}).get("requests") if request.get("op") == "batch" else None
    for item in items if isinstance(items, list) else [request]:
        if not isinstance(item, dict):
            continue
        if item.get("op") == "module" and (item.get("args") or {}).get("source") == \
                modules.source(str((item.get("args") or {}).get("name"))):
            loaded.add(str(item["args"]["name"]))
        unloaded = modules.needed(item) - loaded
        if unloaded:
            return ops.error("Exception", f"op {item.get('op')} is in module "
                             f"{min(unloaded)}, which this session has not loaded")
    return None
