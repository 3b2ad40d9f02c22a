"""Run the agent's C# core under mono, compiled exactly as a target compiles it.

`compile_core` is `mcs -langversion:5 -nostdlib` against mono's .NET 4.5 reference assemblies
(`4.5-api`: the runtime profile would accept 4.6+ APIs a target lacks) with only the assemblies
a Windows PowerShell 3.0 target references, warnings as errors (Add-Type fails on a warning).
`AgentHost` runs the core with `TestHost.cs` (a Main and a recorded stand-in for the Windows
calls) in one mono process, as a session keeps the agent loaded, and speaks the same encoded
requests the transports send.

A mono process costs ~0.2 s of CPU to start and load the modules: tests of what a session
holds use `SharedHost.host(root)`, one process per test process that `AgentHost.reset` gives
each test clean (its own registry, drivers and task root, no recorded calls), as a new process
would start but for the modules it loaded and its key pair. Tests of what a new session or
process does (loading modules, the cache) start their own `AgentHost`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from pushinstall.remote import modules, ops

REFERENCE = Path("/usr/lib/mono/4.5-api")
ASSEMBLIES = ("mscorlib", "System", "System.Core", "System.Web.Extensions", "System.ServiceProcess",
              "System.IO.Compression", "System.IO.Compression.FileSystem")
TEST_HOST = Path(__file__).with_name("TestHost.cs")
_BUILT: dict[str, Path] = {}


def require_mono() -> None:
    """Skip when mcs/mono are missing here; fail in CI, where .ci/run installs them."""
    if shutil.which("mcs") and shutil.which("mono") and REFERENCE.is_dir():
        return
    message = "mono (mcs, mono, /usr/lib/mono/4.5-api) is not installed: .ci/run installs it"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def mcs_command(sources: list[Path], out: Path, target: str) -> list[str]:
    """The mcs line that compiles as csc on .NET 4.5 would for Add-Type."""
    refs = [f"-r:{REFERENCE / (name + '.dll')}" for name in ASSEMBLIES]
    return ["mcs", "-langversion:5", "-nostdlib", "-noconfig", "-warnaserror", "-warn:4",
            f"-target:{target}", f"-out:{out}", *refs, *map(str, sources)]


def compile_core(workdir: Path, with_host: bool = True) -> tuple[Path, float]:
    """Compile ops.agent_core_source() (and the test host); `(assembly, seconds)`."""
    source = workdir / "PushinstallAgentCore.cs"
    source.write_text(ops.agent_core_source(), encoding="utf-8")
    sources = [source, TEST_HOST] if with_host else [source]
    out = workdir / ("TestHost.exe" if with_host else "PushinstallAgentCore.dll")
    started = time.monotonic()
    done = subprocess.run(mcs_command(sources, out, "exe" if with_host else "library"),
                          capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise AssertionError(f"mcs failed:\n{done.stdout}\n{done.stderr}")
    return out, seconds


def built_host() -> Path:
    """The test host, compiled once per machine for its sources: every test process (and the
    next run) uses `<tmp>/pushinstall-agent-<uid>/<sha256 of the sources, mono's version and the
    mcs command>/TestHost.exe`, whose
    `cache/` beside it holds the modules the agent compiled (content-addressed, written by
    temp file and rename, read back by hash: Cache.cs), so six xdist workers compile once."""
    mono = subprocess.run(["mono", "--version"], capture_output=True, text=True,
                          check=False).stdout.split("\n", 1)[0]    # an upgrade builds anew
    key = hashlib.sha256("\0".join([ops.agent_core_source(), TEST_HOST.read_text(), mono,
                                     *mcs_command([], Path("out"), "exe")]).encode()).hexdigest()
    if key not in _BUILT:
        home = Path(tempfile.gettempdir()) / f"pushinstall-agent-{os.getuid()}"
        built = home / key
        if not (built / "TestHost.exe").is_file():
            home.mkdir(mode=0o700, exist_ok=True)
            workdir = Path(tempfile.mkdtemp(prefix="build-", dir=home))
            try:
                compile_core(workdir)
            except BaseException:
                shutil.rmtree(workdir, ignore_errors=True)
                raise
            (workdir / "cache").mkdir()
            try:
                workdir.rename(built)       # another process that got there first wins
            except OSError:
                shutil.rmtree(workdir, ignore_errors=True)
        _BUILT[key] = built / "TestHost.exe"
    return _BUILT[key]


class AgentHost:
    """One mono process holding the core, like one PowerShell session holding the agent."""

    def __init__(self, root: Path, load_modules: bool = True, cache: Path | None = None) -> None:
        require_mono()
        self.root = root
        registry = root / "registry"
        registry.mkdir(parents=True, exist_ok=True)
        source = root / "PushinstallAgentCore.cs"
        source.write_text(ops.agent_core_source(), encoding="utf-8")
        # HKCU is in $HOME/.mono/registry: the host's own, not the user's
        env = {**os.environ, "MONO_REGISTRY_PATH": str(registry), "HOME": str(root / "home"),
               "PUSHINSTALL_TEST_CORE_SOURCE": str(source),
               "PUSHINSTALL_TEST_DRIVERS": str(root / "drivers"), "LANG": "C.UTF-8",
               "PUSHINSTALL_TEST_CACHE": str(cache or built_host().parent / "cache")}
        self.process = subprocess.Popen(
            ["mono", str(built_host())], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env=env, cwd=root)
        if load_modules:    # as a transport does with the first request that needs one
            for name in ops.MODULE_NAMES:
                assert self.answer(modules.load_request(name))["ok"], name
            self.command("CALLS")   # the cache's ProtectDirectory: not what a test looks at

    def reset(self, root: Path) -> bool:
        """This host as a new one in `root` would start (TestHost.cs RESET), but for the modules
        it loaded and its key pair; False when the process is gone or out of step."""
        if self.process.poll() is not None:
            return False
        try:
            answered = self.command(f"RESET {root}")
        except (OSError, ValueError):
            return False
        if answered != str(root):
            return False
        self.root = root
        return True

    def command(self, line: str) -> Any:
        """Send one test-host command line; the JSON it answers."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(line.encode("utf-8") + b"\n")
        self.process.stdin.flush()
        reply = self.process.stdout.readline().decode("utf-8")
        if reply.startswith(ops.SENTINEL):
            return ops.decode_answer(reply)
        return json.loads(reply)

    def line(self, encoded: str) -> dict[str, Any]:
        """The answer to an encoded request, exactly as a transport would send it."""
        answer: dict[str, Any] = self.command("REQUEST " + encoded)
        return answer

    def answer(self, req: dict[str, Any]) -> dict[str, Any]:
        """The decoded answer to `req`."""
        return self.line(ops.encode_request(req))

    def call(self, op: str, **args: Any) -> Any:
        """The result of op `op`; an error answer fails the test."""
        answer = self.answer(ops.request(op, **args))
        assert answer["ok"], answer
        return answer["result"]

    def fact(self, kind: str, **query: Any) -> Any:
        """One fact."""
        return self.call("facts", queries=[{"id": "q", "kind": kind, **query}])["q"]

    def quote(self, arguments: list[str]) -> str:
        """The core's argv join of `arguments`."""
        data = base64.b64encode(json.dumps(arguments).encode()).decode()
        joined: str = self.command("QUOTE " + data)
        return joined

    def close(self) -> None:
        """End the mono process."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=30)


class SharedHost:
    """One AgentHost for a test process, handed to each test reset to the test's root; started
    again when a test left it dead or out of step (a reply it did not read)."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._host: AgentHost | None = None

    def host(self, root: Path) -> AgentHost:
        """The host, clean, with `root` as its working directory and drivers' parent."""
        require_mono()
        if self._host is not None and self._host.reset(root):
            return self._host
        if self._host is not None:
            self._host.process.kill()
            self._host.process.wait(timeout=30)
        self._host = AgentHost(self._root)
        assert self._host.reset(root)
        return self._host

    def close(self) -> None:
        """End the process, if one was started."""
        if self._host is not None:
            self._host.close()
