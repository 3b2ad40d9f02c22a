"""`pushinstall` in a real process of its own, forked from a warm one instead of started cold.

A test that needs the command as a process (to kill it, interrupt it, bound its CPU, hold a
lock against it, watch its workers) used to start `python -m pushinstall`: about 1 s of CPU
each time, nearly all of it importing the package and its libraries again. Here one server
process per test process imports every module of the package once, then forks a child per
command. The child is a real process with its own pid, environment, working directory, file
descriptors 0-2, session and resource limits; it runs `pushinstall/__main__.py` as
`python -m pushinstall` would and ends as an interpreter ends (non-daemon threads joined,
atexit run, the exit code of its `SystemExit`). What differs from a cold start, and where a
test must not rely on it: its modules were imported before its environment was set (the
package reads its environment at call time, never at import), its command line in /proc is the
server's (tests/test_no_secret_leaks.py starts a cold process for that reason), and stdin is
/dev/null unless given.

`Popen` and `run` take the arguments of `pushinstall` and the keywords of `subprocess`'s that
the tests use. Output asked for as `subprocess.PIPE` goes to an unlinked temporary file, which
`communicate` reads once the child has ended (no pipe to fill, so no deadlock); `stdout` and
`stderr` read what it has written so far.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

MAX_MESSAGE = 1 << 20
_server: subprocess.Popen[bytes] | None = None
_address = ""
_lock = threading.Lock()
# The null device, opened once: each child gets a duplicate of it, so a child's stdin (and any
# output sent nowhere) never depends on the path /dev/null resolving at that moment.
_NULL = os.open(os.devnull, os.O_RDWR)


# ---- the client side: the test process -------------------------------------------------------

class Popen:
    """A forked `pushinstall ARGS`, with the part of `subprocess.Popen` the tests use."""

    def __init__(self, args: Sequence[str], *, cwd: str | Path | None = None,
                 env: dict[str, str] | None = None, stdin: Any = None, stdout: Any = None,
                 stderr: Any = None, text: bool = False, start_new_session: bool = False,
                 cpu_seconds: int | None = None, controlling_tty: bool = False) -> None:
        self.args = ["pushinstall", *args]
        self.returncode: int | None = None
        self.rusage: dict[str, float] = {}      # ru_maxrss (KiB), ru_utime, ru_stime once ended
        self._text = text
        self._readers: dict[str, IO[Any]] = {}
        fds: list[int] = []
        close: list[int] = []
        for name, value in (("stdin", stdin), ("stdout", stdout), ("stderr", stderr)):
            if value == subprocess.STDOUT:      # stderr=STDOUT: the same descriptor
                fds.append(fds[1])
                continue
            fd, owned = self._descriptor(name, value)
            fds.append(fd)
            if owned:
                close.append(fd)
        request = {"args": list(args), "cwd": str(cwd or os.getcwd()),
                   "env": dict(os.environ if env is None else env),
                   "new_session": start_new_session or controlling_tty,
                   "controlling_tty": controlling_tty, "cpu_seconds": cpu_seconds}
        self._conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._conn.connect(_started_server())
            socket.send_fds(self._conn, [json.dumps(request).encode()], fds)
            self.pid = int(json.loads(self._conn.recv(MAX_MESSAGE))["pid"])
        finally:
            for fd in close:
                os.close(fd)
        self.stdin = None
        self.stdout = self._readers.get("stdout")
        self.stderr = self._readers.get("stderr")

    def _descriptor(self, name: str, value: Any) -> tuple[int, bool]:
        """The descriptor the child gets as `name`, and whether this side must close it."""
        if value is None or value == subprocess.DEVNULL:
            return os.dup(_NULL), True
        if value == subprocess.PIPE:
            if name == "stdin":
                raise ValueError("stdin=PIPE is not supported: give a file")
            fd, path = tempfile.mkstemp(prefix=f"pushinstall-{name}-")
            self._readers[name] = (open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
                                   if self._text else open(path, "rb"))  # noqa: SIM115
            os.unlink(path)
            return fd, True
        if isinstance(value, int):
            return value, False
        return value.fileno(), False

    def poll(self) -> int | None:
        """The exit code once the child has ended, else None."""
        if self.returncode is None:
            self._conn.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                self._ended(self._conn.recv(MAX_MESSAGE))
            self._conn.setblocking(True)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the child; its exit code (negative: the signal that ended it)."""
        if self.returncode is None:
            self._conn.settimeout(timeout)
            try:
                self._ended(self._conn.recv(MAX_MESSAGE))
            except TimeoutError:
                raise subprocess.TimeoutExpired(self.args, timeout or 0) from None
            finally:
                self._conn.settimeout(None)
        assert self.returncode is not None
        return self.returncode

    def _ended(self, message: bytes) -> None:
        if not message:
            raise RuntimeError("the warm server went away before its child ended")
        ended = json.loads(message)
        self.rusage = ended["rusage"]
        self.returncode = os.waitstatus_to_exitcode(ended["status"])

    def communicate(self, timeout: float | None = None) -> tuple[Any, Any]:
        """Wait for the child; everything it wrote to the PIPE outputs (None for others)."""
        self.wait(timeout)
        return (self.stdout.read() if self.stdout else None,
                self.stderr.read() if self.stderr else None)

    def send_signal(self, sig: int) -> None:
        """Send `sig` to the child while it runs."""
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL the child while it runs."""
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        """SIGTERM the child while it runs."""
        self.send_signal(signal.SIGTERM)

    def __enter__(self) -> Popen:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
        self.wait()
        self._conn.close()
        for reader in self._readers.values():
            reader.close()


def run(args: Sequence[str], *, cwd: str | Path | None = None, env: dict[str, str] | None = None,
        capture_output: bool = False, text: bool = False, timeout: float | None = None,
        check: bool = False, **keywords: Any) -> subprocess.CompletedProcess[Any]:
    """`subprocess.run` for a forked `pushinstall ARGS`."""
    if capture_output:
        keywords.update(stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with Popen(args, cwd=cwd, env=env, text=text, **keywords) as process:
        try:
            out, err = process.communicate(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode is not None
    done = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    if check:
        done.check_returncode()
    return done


def _started_server() -> str:
    """The address of this process's warm server, started the first time."""
    global _server, _address
    with _lock:
        if _server is None or _server.poll() is not None:
            folder = tempfile.mkdtemp(prefix="pushinstall-warm-")
            _address = os.path.join(folder, "socket")
            _server = subprocess.Popen([sys.executable, __file__, _address],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            assert _server.stdout is not None
            if _server.stdout.readline() != b"ready\n":
                raise RuntimeError("the warm server did not start")
            atexit.register(_stop_server, _server)
        return _address


def _stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.stdin:
        server.stdin.close()        # its end-of-file is the server's signal to go
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.wait(timeout=10)


# ---- the server side: `python tests/warm.py ADDRESS` -----------------------------------------

def _preload() -> None:
    """Import every module of the package (but its `__main__`) and what they import; make the
    agent's text and packed form, which every connection's first use would make (~0.2 s:
    pure functions of the shipped files, kept by their lru_caches, as the engine's
    `transports.factory.prepare` makes them once before it forks its workers)."""
    import pkgutil

    import pushinstall
    for module in pkgutil.walk_packages(pushinstall.__path__, "pushinstall."):
        if not module.name.endswith("__main__"):
            __import__(module.name)
    from pushinstall.remote import bootstrap, ops
    bootstrap.packed(ops.agent_source())
    bootstrap.agent_hash()
    for name in ops.MODULE_NAMES:
        ops.agent_core_source(name)


def serve(address: str) -> None:
    """Fork a child per request on `address` until stdin ends; tell each requester its child's
    pid, then its wait status and resource usage."""
    _preload()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(address)
    listener.listen(64)
    wake_read, wake_write = socket.socketpair()
    wake_write.setblocking(False)
    signal.set_wakeup_fd(wake_write.fileno())
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(sys.stdin, selectors.EVENT_READ, "parent")
    selector.register(wake_read, selectors.EVENT_READ, "child")
    waiting: dict[int, socket.socket] = {}
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        for key, _ in selector.select():
            if key.data == "parent" and not os.read(sys.stdin.fileno(), 1):
                return
            if key.data == "child":
                wake_read.recv(4096)
            if key.data == "accept":
                conn, _ = listener.accept()
                message, fds, _, _ = socket.recv_fds(conn, MAX_MESSAGE, 3)
                own = [listener, wake_read, wake_write, selector, *waiting.values()]
                pid = os.fork()
                if pid == 0:
                    _child(json.loads(message), fds, conn, own)
                for fd in fds:
                    os.close(fd)
                _send(conn, {"pid": pid})
                waiting[pid] = conn
        while waiting:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
            if not pid:
                break
            conn = waiting.pop(pid)
            _send(conn, {"status": status, "rusage": {
                "ru_maxrss": usage.ru_maxrss, "ru_utime": usage.ru_utime,
                "ru_stime": usage.ru_stime}})
            conn.close()


def _send(conn: socket.socket, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):      # the test may have gone
        conn.send(json.dumps(message).encode())


def _child(request: dict[str, Any], fds: list[int], conn: socket.socket,
           own: list[Any]) -> None:
    """In the forked child: become `python -m pushinstall ARGS` as asked; never return."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for owned in (conn, *own):     # the server's sockets and selector: not the child's
            owned.close()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in set(fds) - {0, 1, 2}:
            os.close(fd)
        if request["new_session"]:
            os.setsid()
        if request["controlling_tty"]:
            import fcntl
            import termios
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        if request["cpu_seconds"]:
            limit = int(request["cpu_seconds"])
            resource.setrlimit(resource.RLIMIT_CPU, (limit, limit + 1))
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        _stdio()
        code = _run_main(request["args"], request["cwd"])
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def _stdio() -> None:
    """Text streams on descriptors 0-2 as a new interpreter would make them from its env."""
    encoding = os.environ.get("PYTHONIOENCODING", "utf-8").split(":")[0] or "utf-8"
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))

    def stream(fd: int, mode: str, errors: str) -> io.TextIOWrapper:
        raw: Any = open(fd, mode + "b", buffering=0 if unbuffered and mode == "w" else -1,  # noqa: SIM115
                        closefd=False)
        return io.TextIOWrapper(raw, encoding=encoding, errors=errors,
                                line_buffering=os.isatty(fd), write_through=unbuffered)

    sys.stdin = sys.__stdin__ = stream(0, "r", "strict")
    sys.stdout = sys.__stdout__ = stream(1, "w", "strict")
    sys.stderr = sys.__stderr__ = stream(2, "w", "backslashreplace")


def _run_main(args: list[str], cwd: str) -> int:
    """Run `pushinstall/__main__.py` as `python -m pushinstall` does; end like an interpreter:
    the exit code, non-daemon threads joined, atexit callbacks run, the streams flushed."""
    import runpy
    sys.argv = [str(Path(__import__("pushinstall").__file__).with_name("__main__.py")), *args]
    sys.path[0] = cwd
    code = 0
    try:
        runpy.run_module("pushinstall", run_name="__main__", alter_sys=True)
    except SystemExit as done:
        if done.code is None or isinstance(done.code, int):
            code = (done.code or 0) & 0xFF
        else:
            print(done.code, file=sys.stderr)
            code = 1
    except KeyboardInterrupt:    # as the interpreter does: die of SIGINT, after the traceback
        traceback.print_exc()
        _finish()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)
    except BaseException:
        traceback.print_exc()
        code = 1
    _finish()
    return code


def _finish() -> None:
    threading._shutdown()   # type: ignore[attr-defined]   # what Py_Finalize calls first
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


if __name__ == "__main__":
    serve(sys.argv[1])
