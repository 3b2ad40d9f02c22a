"""`LabHost`: one simulated Windows host that answers the op protocol (docs/ops.md).

State persists in `<state dir>/lab/<host>.json` (file contents in `<host>.files/`). Saving is
write-behind: a call changes the machine in memory and marks the host dirty; the process's
flusher (lab/flusher.py) saves it soon after, and at exit (`LabHost.flush` saves one now), so a
later run, a `check`, or another process serving the same state dir sees what earlier calls did.
A process killed outright loses at most the last `flusher.FLUSH_SECONDS` of simulated changes.
A state file changed by someone else (`pushinstall lab reset`, another process) is read again
when a client connects, before a call when the last look is `SYNC_SECONDS` old, and before a
save; it wins over changes not yet saved. A host that never answered a call has no file: its
vars make the same fresh machine again.
"""

from __future__ import annotations

import binascii
import copy
import datetime as dt
import json
import logging
import math
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pushinstall import paths
from pushinstall.errors import RemoteOpFailed
from pushinstall.lab import agent_cache, facts, products
from pushinstall.lab.common import iso, parse_iso
from pushinstall.lab.decoded import decoded, valid
from pushinstall.lab.flusher import FLUSHER
from pushinstall.lab.fresh import fresh_state
from pushinstall.lab.handlers import HANDLERS, file_chunk
from pushinstall.lab.state import AUTOLOGON_CHECKED, HostState
from pushinstall.lab.vars import parse_lab_vars
from pushinstall.remote import modules, ops
from pushinstall.secret import MASK

log = logging.getLogger(__name__)
OP_LOG_LIMIT = 1000
_STATE_JSON = json.JSONEncoder(check_circular=False, separators=(",", ":"))  # a tree: 2x faster
SYNC_SECONDS = 1.0
_LINE = re.compile(r"^\s*Invoke-PushinstallOp -Request '([A-Za-z0-9+/]*={0,2})'\s*$")


def state_file(state_dir: Path, name: str) -> Path:
    """Where host `name`'s state lives (odd characters in the name escaped)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", lambda m: f"%{ord(m.group()):02X}", name)
    return state_dir / "lab" / f"{safe}.json"


def _masked(req: dict[str, Any]) -> dict[str, Any]:
    """A request as the op log keeps it: secret values replaced by the mask (the parts that
    hold none are shared with the request, which nobody changes once sent)."""
    args = req.get("args")
    if not isinstance(args, dict):
        return req
    shown = dict(args)
    if req.get("op") == "write_secret" and "content" in args:
        shown["content"] = MASK
    if isinstance(args.get("credential"), dict):
        shown["credential"] = {**args["credential"], "password": MASK}
    source = args.get("source")
    if req.get("op") == "download" and isinstance(source, str) and "?" in source:
        shown["source"] = source.split("?", 1)[0] + "?" + MASK   # a SAS token is a credential
    if req.get("op") == "batch" and isinstance(args.get("requests"), list):
        shown["requests"] = [_masked(r) if isinstance(r, dict) else r for r in args["requests"]]
    return {**req, "args": shown}


class LabHost:
    """A simulated host. Thread-safe: one lock per host; ops run one at a time, except that
    a running simulated installer releases the lock while it 'runs'.

    Share one object per (state dir, name) in a process: `pushinstall.lab.lab_host`.
    """

    def __init__(self, name: str, lab_vars: dict[str, Any] | None = None,
                 state_dir: Path | None = None) -> None:
        self.name = name
        self.lab = parse_lab_vars(lab_vars)
        self._vars = copy.deepcopy(lab_vars)
        self.path = state_file(state_dir or paths.state_dir(), name)
        self._where = str(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)  # so the flusher never makes it
        self.blob_dir = self.path.with_suffix(".files")
        self.op_log: list[str] = []
        self.calls: list[dict[str, Any]] = []
        self.compiles = 0     # how often the bootstrap compiled the core (per process)
        self.receiver_compiles = 0    # ... and the push receiver, which found no cached DLL
        self._lock = threading.Lock()
        self._http_503_left = self.lab.http_503
        self._dark = False    # a `dark_after` op ran: refused from now on (per process)
        self._connects = 0
        self._seen: tuple[int, int] | None = None
        self._synced = 0.0
        self.last_call = 0.0
        self._dirty = False
        self.state = self._load()

    # ------------------------------------------------------------ persistence

    def _load(self) -> HostState:
        """The saved machine, or a fresh one (not saved until it answers a call)."""
        self._dirty = False
        try:
            saved = json.loads(self.path.read_text(encoding="utf-8"))
            state = HostState(saved["state"], self.blob_dir)
            self._history = list(saved.get("op_log", []))
        except FileNotFoundError:
            shutil.rmtree(self.blob_dir, ignore_errors=True)
            state = fresh_state(self.name, self.lab, self.blob_dir)
            self._history = []
        self._stamp()
        return state

    def _stamp(self) -> None:
        try:
            stat = self.path.stat()
            self._seen = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            self._seen = None

    def _save(self, create: bool = True) -> None:
        """Write the file contents, then the state and the op log (atomically), then delete
        the contents of removed files. `create` False: a state dir that is gone stays gone
        (FileNotFoundError) instead of being made again."""
        self.path.parent.mkdir(parents=create, exist_ok=True)
        self.state.blobs.flush_new()
        temp = self.path.with_name(f"{self.path.name}.{threading.get_ident()}.tmp")
        saved = {"state": self.state.data, "op_log": self._history[-OP_LOG_LIMIT:]}
        temp.write_text(_STATE_JSON.encode(saved), encoding="utf-8")
        os.replace(temp, self.path)
        self._stamp()
        self.state.blobs.flush_dropped()
        self._dirty = False

    def _touch(self) -> None:
        if not self._dirty:
            self._dirty = True
            FLUSHER.mark(self)

    def flush(self, create: bool = True) -> None:
        """Save now what calls changed (the flusher does it when the host is quiet); a file
        changed by someone else meanwhile wins. `create`: as `_save`."""
        with self._lock:
            if not self._sync() and self._dirty:
                self._save(create)

    def _sync(self) -> bool:
        """Read the state file again when someone else changed or removed it (True then)."""
        self._synced = time.monotonic()
        try:
            stat = os.stat(self._where)
            now: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            now = None
        if now == self._seen:
            return False
        self.state = self._load()
        return True

    def after_fork(self) -> None:
        """In a forked child: a fresh lock; the parent saves what it had not saved yet."""
        self._lock = threading.Lock()
        self._dirty = False

    def reset(self) -> None:
        """Start fresh: forget every change (`pushinstall lab reset`)."""
        with self._lock:
            self.path.unlink(missing_ok=True)
            self.state = self._load()

    @property
    def generation(self) -> int:
        """How many calls changed the machine's state since it was made fresh."""
        return int(self.state.data["generation"])

    # ------------------------------------------------------------ faults

    @property
    def latency(self) -> float:
        """Seconds each op takes on the wire (lab var `latency_ms`)."""
        return self.lab.latency_ms / 1000.0

    def update_vars(self, lab_vars: dict[str, Any] | None) -> None:
        """Take new per-call settings (the starting state is kept)."""
        if lab_vars != self._vars:
            self.lab = parse_lab_vars(lab_vars)
            self._vars = copy.deepcopy(lab_vars)

    def connection_fault(self) -> str | None:
        """`"unreachable"`, `"bad_credentials"` or None: what a connection attempt meets."""
        if self._dark or self.lab.unreachable or time.time() < float(
                self.state.data.get("dark_until", 0)):
            return "unreachable"
        if self.lab.bad_credentials:
            return "bad_credentials"
        return None

    def refuses_connect(self) -> bool:
        """A client connects: True for each of the first `refuse_first_connects` attempts.
        The host reads its state file again if another process changed it."""
        with self._lock:
            self._sync()
            self._connects += 1
            return self._connects <= self.lab.refuse_first_connects

    def take_http_503(self) -> bool:
        """True while the web server still owes a 503 (lab var `http_503`, per process)."""
        if self._http_503_left > 0:
            self._http_503_left -= 1
            return True
        return False

    def sleep(self, seconds: float) -> None:
        """Let simulated time pass, other calls may run meanwhile (called with the lock)."""
        if seconds <= 0:
            return
        self._lock.release()
        try:
            time.sleep(seconds)
        finally:
            self._lock.acquire()

    def restart(self) -> None:
        """Restart now: dark for `reboot_seconds`, then a new boot time, the pending signals
        cleared, and services started by their start mode (with their faults)."""
        state = self.state
        back = time.time() + self.lab.reboot_seconds
        state.put("dark_until", back)
        old = parse_iso(state.data["boot_time"])
        new = dt.datetime.fromtimestamp(math.ceil(back), dt.timezone.utc)
        state.put("boot_time", iso(max(new, old + dt.timedelta(seconds=1))))
        state.clear_pending()
        products.after_restart(state)
        state.registry.create_key(AUTOLOGON_CHECKED)
        for record in state.services.values():
            state.set_status(record, "Stopped")
            if state.start_mode(record["name"]) in ("Automatic", "AutomaticDelayed"):
                products.start_service(state, self.lab, record["name"])

    # ------------------------------------------------------------ the protocol

    def handle(self, request: dict[str, Any], checked: bool = False,
               streamed: Iterator[bytes] | None = None) -> dict[str, Any]:
        """Answer one request dict with an answer dict; the host is saved soon after.
        `checked`: the request is known to pass `ops.validate_request` as a whole;
        `streamed`: the push stream's bytes after a `file_chunk` request line."""
        with self._lock:
            if time.monotonic() - self._synced >= SYNC_SECONDS:
                self._sync()
            # a transport's module loads ahead of a request are logged as their own calls
            loads, shown = modules.unwrapped(request) if isinstance(request, dict) else ([], {})
            for logged in [*loads, shown]:
                op = logged.get("op") if isinstance(request, dict) else None
                self.op_log.append(str(op))
                self.calls.append(_masked(logged) if isinstance(request, dict) else {})
                self._history.append(str(op))
            before = self.state.changes
            self.last_call = time.monotonic()
            answer = self._dispatch(request, checked, streamed)
            self._dark = self._dark or op in self.lab.dark_after
            if self.state.changes != before:
                self.state.data["generation"] += 1
            self._touch()
            return answer

    def _dispatch(self, request: Any, checked: bool = False,
                  streamed: Iterator[bytes] | None = None) -> dict[str, Any]:
        if not isinstance(request, dict) or not isinstance(request.get("op"), str):
            return ops.error("InvalidArgument", 'a request is a JSON object with a string "op"')
        op = request["op"]
        if op not in ops.OP_SCHEMAS:
            return ops.error("UnknownOp", f"unknown op '{op}'")
        args = request.get("args") or {}
        # a batch answers per request, facts per query: when the whole does not pass, the
        # outer part is checked here and each item on its own below
        whole = checked or (op != "batch" and valid({"op": op, "args": args}))
        if not whole:
            try:
                outer = {**args, "requests": []} if op == "batch" and "requests" in args else args
                outer = {**args, "queries": []} if op == "facts" and "queries" in args else outer
                ops.validate_request({"op": op, "args": outer})
            except ValueError as exc:
                return ops.error("InvalidArgument", str(exc))
        try:
            if op == "batch":
                return ops.ok([self._dispatch(inner, checked) for inner in args["requests"]])
            if op == "facts":
                return ops.ok({str(q.get("id")) if isinstance(q, dict) else "":
                               self._fact(q, checked=whole) for q in args["queries"]})
            if streamed is not None:
                return ops.ok(file_chunk(self, args, streamed))
            return ops.ok(HANDLERS[op](self, args))
        except RemoteOpFailed as exc:
            return ops.error(exc.error_type, exc.message)
        except Exception as exc:  # like agent.ps1's catch-all: answer, never drop the call
            log.exception("%s: lab op %s failed", self.name, op)
            return ops.error("Exception", f"{type(exc).__name__}: {exc}")

    def _fact(self, query: Any, checked: bool) -> dict[str, Any]:
        try:
            if not checked:
                ops.validate_request({"op": "facts", "args": {"queries": [query]}})
            return facts.fact(self.state, self.lab, query)
        except ValueError as exc:
            return {"error": {"type": "InvalidArgument", "message": str(exc)}}
        except RemoteOpFailed as exc:
            return {"error": {"type": exc.error_type, "message": exc.message}}

    def define_agent(self, agent_hash: str, packed: bytes) -> agent_cache.Defined:
        """The bootstrap's definition of the agent on this host (lab/agent_cache.py): its
        cache lives in the host's files, so it outlives the session and the process. Not
        counted in `generation` (the machine's configuration did not change)."""
        with self._lock:
            if time.monotonic() - self._synced >= SYNC_SECONDS:
                self._sync()
            before = self.state.changes
            defined = agent_cache.define(self.state.fs, agent_hash, packed)
            self.compiles += defined.compiled
            if self.state.changes != before:
                self._touch()   # saved, but not a change of the machine's configuration
            return defined

    def handle_line(self, command: str) -> str:
        """Run the PowerShell line the controller sends, `Invoke-PushinstallOp -Request
        '<base64>'` and nothing else; returns the output text with the answer line."""
        match = _LINE.match(command)
        if match is None:
            answer = ops.error("InvalidArgument", "a lab host runs only the line "
                               "Invoke-PushinstallOp -Request '<base64>'")
        else:
            try:
                request, whole = decoded(match.group(1))
            except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
                answer = ops.error("InvalidArgument", f"the request is not base64 JSON: {exc}")
            else:
                answer = self.handle(request, checked=whole)
        return ops.encode_answer(answer) + "\n"

    def load_streamed_core(self) -> None:
        """The push receiver's core: the cached DLL when one hashes to its name (nothing
        compiled, nothing stored), else compiled in memory (`receiver_compiles`)."""
        with self._lock:
            if not agent_cache.cached_core(self.state.fs):
                self.receiver_compiles += 1

    def handle_stream(self, request_line: str, streamed: Iterator[bytes]) -> str:
        """The push stream receiver (remote/receiver.py): the `file_chunk` request line and
        the bytes after it, written as they come; returns the output text with the answer
        line."""
        try:
            request, _ = decoded(request_line)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            request = None
        if not isinstance(request, dict) or request.get("op") != "file_chunk":
            answer = ops.error("InvalidArgument", "the push stream carries one file_chunk "
                               "request")
        else:
            answer = self.handle(request, streamed=self._unlocked(streamed))
        return ops.encode_answer(answer) + "\n"

    def _unlocked(self, pieces: Iterator[bytes]) -> Iterator[bytes]:
        """`pieces`, each waited for with the lock released (iterated with it held, as
        `sleep` is called): other calls run while the stream's next Send is on its way. Each
        piece is a call's worth of activity: the flusher does not take the host for quiet and
        save (then read back) the file half-written while its Sends keep coming."""
        while True:
            self._lock.release()
            try:
                piece = next(pieces, None)
            finally:
                self._lock.acquire()
            if piece is None:
                return
            self.last_call = time.monotonic()
            yield piece

    def import_file(self, path: str, data: bytes) -> None:
        """Put a file on the host as an upload outside the op protocol does (SFTP)."""
        with self._lock:
            self._sync()
            self.state.fs.write(path, data)
            self.state.data["generation"] += 1
            self._touch()

    def file_content(self, path: str) -> bytes:
        """A file's content on the host (for tests and the wire endpoints)."""
        with self._lock:
            return self.state.fs.read(path)

