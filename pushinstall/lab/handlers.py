"""The ops of docs/ops.md on a lab host (except `batch` and `facts`, which host.py routes).

Each handler takes the machine and the op's validated args and returns the result dict, or
fails with the op error type agent.ps1 would answer, with .NET's wording where agent.ps1 passes
.NET's message through.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import ntpath
import time
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any, Protocol

from pushinstall.lab import catalog, programs
from pushinstall.lab.common import fail
from pushinstall.lab.fresh import SYSTEM32
from pushinstall.lab.fs import normalize, parent_of
from pushinstall.lab.installers import Context, duration
from pushinstall.lab.products import start_service
from pushinstall.lab.registry import RegistryError
from pushinstall.lab.script import run_script
from pushinstall.lab.state import AUTOLOGON_CHECKED, HostState
from pushinstall.lab.vars import LabVars
from pushinstall.remote import modules
from pushinstall.remote.winargv import windows_argv_split, windows_command_line

PART_SUFFIX = ".pushinstall-part"
_SEARCH_PATH = (SYSTEM32, "C:\\Windows", f"{SYSTEM32}\\WindowsPowerShell\\v1.0")


class Machine(Protocol):
    """What handlers need from a LabHost."""

    state: HostState
    lab: LabVars

    def restart(self) -> None: ...

    def sleep(self, seconds: float) -> None: ...

    def take_http_503(self) -> bool: ...


def ensure_directory(host: Machine, args: dict[str, Any]) -> dict[str, Any]:
    """Create a directory with its parents."""
    return {"changed": host.state.fs.make_dirs(args["path"])}


def remove_file(host: Machine, args: dict[str, Any]) -> dict[str, Any]:
    """Delete a file; a directory is refused."""
    if host.state.fs.is_dir(args["path"]):
        fail("InvalidArgument", f"{args['path']} is a directory")
    return {"removed": host.state.fs.remove(args["path"])}


def _shown(source: str) -> str:
    return source.split("?")[0]  # a SAS token in the query is a credential


def _fetch(host: Machine, source: str, credential: dict[str, str] | None,
           as_system: bool = False) -> bytes:
    lab = host.lab
    if catalog.is_web(source):
        if host.take_http_503():
            fail("DownloadFailed", f"HTTP 503 Service Unavailable from {_shown(source)}")
        name = catalog.name_of(source)
        if name is None:
            fail("DownloadFailed", f"HTTP 404 Not Found from {_shown(source)}")
        return catalog.files()[name]
    if source.lower().startswith(("http://", "https://")):
        server = source.split("/")[2]
        fail("DownloadFailed", f"{_shown(source)}: The remote name could not be resolved: "
                               f"'{server}'")
    if source.startswith("\\\\"):
        if not catalog.is_share(source):
            fail("NotFound", "The network path was not found.")
        if credential is not None and credential["password"] != lab.share_password:
            fail("AccessDenied", f"cannot connect to {catalog.SHARE} as "
                                 f"{credential['username']} (error 1326)")
        # the double hop: a remote session's NTLM/Kerberos logon has no credential to pass
        # on to the share; the machine account (a SYSTEM task) or an explicit one has
        if as_system and lab.share_denies_machine_account:
            fail("AccessDenied", f"Access to the path '{source}' is denied (as "
                                 f"{host.state.data['hostname']}$).")
        if lab.share_requires_credential and credential is None and not as_system:
            fail("AccessDenied", f"Access to the path '{source}' is denied.")
        name = catalog.name_of(source)
        if name is None:
            fail("NotFound", f"Could not find file '{source}'.")
        return catalog.files()[name]
    return host.state.fs.read(source)


def download(host: Machine, args: dict[str, Any]) -> dict[str, Any]:
    """Pull a file from the lab share, the lab web server or a local path."""
    fs, destination = host.state.fs, args["destination"]
    expected = (args.get("sha256") or "").lower()
    before = fs.sha256(destination) if fs.is_file(destination) else None
    if expected and before == expected:
        return {"changed": False, "sha256": before, "size": fs.size(destination)}
    content = _fetch(host, args["source"], args.get("credential"),
                     args.get("run_as") == "system")
    actual = hashlib.sha256(content).hexdigest()
    if expected and actual != expected:
        fail("HashMismatch", f"{_shown(args['source'])} has sha256 {actual}, expected {expected}")
    parent = parent_of(normalize(destination))
    if parent is not None:
        fs.make_dirs(parent)
    if actual != before:
        fs.write(destination, content)
    return {"changed": actual != before, "sha256": actual, "size": len(content)}


def _check_part(host: Machine, temp_path: str) -> None:
    if not temp_path.lower().endswith(PART_SUFFIX):
        fail("InvalidArgument", "temp_path must be a name that file_begin answered")
    if not host.state.fs.is_file(temp_path):
        fail("NotFound", f"no such temporary file: {temp_path}")


def file_begin(host: Machine, args: dict[str, Any]) -> dict[str, Any]:
    """An empty temporary file beside the destination, if the drive has room."""
    destination, size = normalize(args["destination"]), args["size"]
    free = host.state.data["fs"]["free_bytes"]
    if destination.lower().startswith("c:") and free < size:
        fail("DiskFull", f"C:\\ needs {size} bytes, {free} are free")
    parent = parent_of(destination)
    if parent is not None:
        host.state.fs.make_dirs(parent)
    temp = f"{destination}.{uuid.uuid4().hex[:12]}{PART_SUFFIX}"
    host.state.fs.write(temp, b"")
    return {"temp_path": temp}


def file_chunk(host: Machine, args: dict[str, Any], streamed: Iterator[bytes] | None = None
               ) -> dict[str, Any]:
    """Write one chunk at its offset: a call's base64 `data`, or the push stream's `length`
    raw bytes (`streamed`: the pieces that followed the request line, each written as it
    comes, the rest of the stream left unread; the core's `Files.ChunkFrom`)."""
    if (streamed is None) != ("length" not in args):
        fail("InvalidArgument", "a streamed chunk has a length and no data" if streamed
             is not None else "argument 'length' is for the push stream; a call has 'data'")
    temp, offset = args["temp_path"], args["offset"]
    _check_part(host, temp)
    if streamed is None:
        return {"size": host.state.fs.write_at(temp, offset, base64.b64decode(args["data"]))}
    length, done = args["length"], 0
    size = host.state.fs.size(temp)
    while done < length:
        piece = next(streamed, None)
        if piece is None:
            fail("InvalidArgument", f"the push stream ended after {done} of {length} bytes")
        data = memoryview(piece)[:length - done]
        size = host.state.fs.write_at(temp, offset + done, data)
        done += len(data)
    return {"size": size}


def file_end(host: Machine, args: dict[str, Any]) -> dict[str, Any]:
    """Check the pushed file's hash, then move it into place."""
    fs, temp, destination = host.state.fs, args["temp_path"], args["destination"]
    _check_part(host, temp)
    expected, actual = args["sha256"].lower(), fs.sha256(temp)
    if actual != expected:
        fs.remove(temp)
        fail("HashMismatch", f"pushed file has sha256 {actual}, expected {expected}")
    changed = not (fs.is_file(destination) and fs.sha256(destination) == actual)
    if changed:
        fs.move(temp, destination)
    else:
        fs.remove(temp)
    return {"changed": changed, "sha256": actual, "size": fs.size(destination)}


def expand_archive(host: Machine, args: dict[str, Any]) -> dict[str, Any]:
    """Extract a zip once per archive hash (the marker file records it)."""
    fs, path = host.state.fs, args["path"]
    if not fs.is_file(path):
        fail("NotFound", f"no such archive: {path}")
    digest = fs.sha256(path)
    root = normalize(args["destination"]).rstrip("\\") + "\\"
    marker = root + ".pushinstall-expanded"
    if fs.is_file(marker) and fs.read(marker).decode("utf-8", "replace").strip() == digest:
        return {"changed": False, "files": 0}
    try:
        archive = zipfile.ZipFile(io.BytesIO(fs.read(path)))
    except zipfile.BadZipFile:
        fail("Exception", "End of Central Directory record could not be found.")
    fs.make_dirs(root)
    count = 0
    with archive:
        for info in archive.infolist():
            target = normalize(ntpath.join(root, info.filename.replace("/", "\\")))
            if not (target + "\\").lower().startswith(root.lower()):
                fail("InvalidArgument", f"archive entry {info.filename} points outside the "
                                        "destination")
            if info.is_dir():
                fs.make_dirs(target)
                continue
            fs.make_dirs(parent_of(target) or root)
            fs.write(target, archive.read(info))
            count += 1
    fs.write(marker, digest.encode("ascii"))
    return {"changed": True, "files": count}


def _resolve(host: Machine, path: str) -> tuple[str, bytes]:
    """The executable's full path and content, as Process.Start finds it."""
    fs = host.state.fs
    if path.startswith("\\\\"):
        if catalog.is_share(path) and host.lab.share_requires_credential:
            fail("AccessDenied", f"cannot start {path}: Access is denied")
        name = catalog.name_of(path) if catalog.is_share(path) else None
        if name is None:
            fail("NotFound", f"no such executable: {path}")
        return path, catalog.files()[name]
    if ntpath.isabs(path) or ntpath.splitdrive(path)[0]:
        if not fs.is_file(path):
            fail("NotFound", f"no such executable: {path}")
        return normalize(path), fs.read(path)
    names = [path] if ntpath.splitext(path)[1] else [path, path + ".exe"]
    for directory in _SEARCH_PATH:
        for name in names:
            candidate = f"{directory}\\{name}"
            if fs.is_file(candidate):
                return normalize(candidate), fs.read(candidate)
    fail("NotFound", f"cannot start {path}: The system cannot find the file specified")


def run_process(host: Machine, args: dict[str, Any]) -> dict[str, Any]:
    """Run a simulated program; its argv is the argument list after Windows quoting."""
    path, arguments = args["path"], args.get("arguments") or []
    timeout_s, tail = args.get("timeout_s") or 3600, args.get("tail_lines", 20)
    _full, content = _resolve(host, path)
    directory = args.get("working_directory")
    if directory and not host.state.fs.is_dir(directory):
        fail("NotFound", f"no such working directory: {directory}")
    command_line = windows_command_line(path, arguments)
    meta = catalog.identify(content)
    if meta is None:
        fail("Exception", f"cannot start {path}: The specified executable is not a valid "
                          "application for this OS platform.")
    argv = list(_split(command_line)[1:])
    started = time.monotonic()
    runs_for = duration(meta, argv, host.lab)
    if runs_for > timeout_s:
        host.sleep(timeout_s)
        return {"exit_code": 1, "timed_out": True,
                "duration_s": round(time.monotonic() - started, 3), "stdout_tail": [],
                "stderr_tail": [], "command_line": command_line}
    host.sleep(runs_for)
    outcome = programs.run(Context(host.state, host.lab, host.restart), meta, argv)
    answer = {"exit_code": outcome.exit_code, "timed_out": False,
              "duration_s": round(time.monotonic() - started, 3),
              "stdout_tail": outcome.stdout[-tail:] if tail else [],
              "stderr_tail": outcome.stderr[-tail:] if tail else [],
              "command_line": command_line}
    if args.get("log_path"):
        answer["log_tail"] = _log_tail(host, args["log_path"], LOG_TAIL_LINES)
    return answer


LOG_TAIL_LINES = 50


def _log_tail(host: Machine, path: str, lines: int) -> list[str]:
    """The last `lines` lines of a log the program wrote (none when it wrote none)."""
    if not host.state.fs.is_file(path):
        return []
    return host.state.fs.read(path).decode("utf-8", "replace").splitlines()[-lines:]


def write_secret(host: Machine, args: dict[str, Any]) -> dict[str, Any]:
    """A file only SYSTEM and Administrators may read; the content is never answered."""
    fs, path = host.state.fs, args["path"]
    content = args["content"].encode("utf-8")
    entry = fs.entry(path)
    if entry is not None and entry.get("secret") and fs.read(path) == content:
        return {"changed": False}
    parent = parent_of(normalize(path))
    if parent is not None:
        fs.make_dirs(parent)
    fs.write(path, content, secret=True)
    return {"changed": True}


def set_service(host: Machine, args: dict[str, Any]) -> dict[str, Any]:
    """Start mode first (a Disabled service cannot start), then the state."""
    state = host.state
    record = state.find_service(args["name"])
    if record is None:
        fail("NotFound", f"no such service: {args['name']}")
    name, changed = record["name"], False
    if args.get("start_mode"):
        changed = state.set_start_mode(name, args["start_mode"])
    status = record["status"]
    wanted = {"running": "Running", "stopped": "Stopped"}.get(args.get("state") or "")
    if wanted == "Stopped" and status != "Stopped":
        state.set_status(record, "Stopped")
        status = "Stopped"
        changed = True
    elif wanted == "Running" and status != "Running":
        timeout = args.get("timeout_s") or 60
        if state.start_mode(name) == "Disabled":
            fail("ServiceFailed", f"{name} did not reach Running within {timeout} s (status "
                                  f"{status}): Cannot start service {name} on computer '.'.")
        status = start_service(state, host.lab, name)
        if status != "Running":
            fail("ServiceFailed", f"{name} did not reach Running within {timeout} s (status "
                                  f"{status}): The service did not respond to the start or "
                                  "control request in a timely fashion.")
        changed = True
    return {"changed": changed, "status": status, "start_mode": state.start_mode(name)}


def set_registry(host: Machine, args: dict[str, Any]) -> dict[str, Any]:
    """Write one value, creating the key."""
    try:
        changed = host.state.registry.set(args["key"], args["name"], args["value"],
                                          args["type"], args.get("view") or "64")
    except RegistryError as exc:
        fail("InvalidArgument", str(exc))
    return {"changed": changed}


def reboot(host: Machine, args: dict[str, Any]) -> dict[str, Any]:
    """Answer the boot time, then restart (the host goes dark for `reboot_seconds`)."""
    before = host.state.data["boot_time"]
    host.state.registry.delete_key(AUTOLOGON_CHECKED)
    host.restart()
    return {"boot_time_before": before}


def module(host: Machine, args: dict[str, Any]) -> dict[str, Any]:
    """Load a module: the lab runs only this version's (its ops are the lab's own, so the
    endpoints only check a session sends the module before its ops: agent_cache.refusal)."""
    if args["source"] != modules.source(args["name"]):
        fail("Exception", f"module {args['name']} did not load: not this version's module")
    return {"name": args["name"]}


def script(host: Machine, args: dict[str, Any]) -> dict[str, Any]:
    """The escape hatch, in the lab's tiny reading (lab/script.py)."""
    return run_script(args["source"], args.get("parameters"))


@functools.lru_cache(maxsize=1024)
def _split(command_line: str) -> tuple[str, ...]:
    """The program's argv (a fleet's hosts run the same few command lines)."""
    return tuple(windows_argv_split(command_line))


HANDLERS = {
    "ensure_directory": ensure_directory, "download": download, "file_begin": file_begin,
    "file_chunk": file_chunk, "file_end": file_end, "expand_archive": expand_archive,
    "run_process": run_process, "write_secret": write_secret, "remove_file": remove_file,
    "set_service": set_service, "set_registry": set_registry, "reboot": reboot,
    "script": script, "module": module,
}
