"""The ssh transport against the lab's SSH endpoint: real asyncssh on both ends, over 127.0.0.1.

Nothing here is mocked on the wire. `_StandIn` below stands in for `pushinstall.lab.LabHost`
only where a test needs a host behaviour the lab does not model (an op that sleeps, a recorded
request list); the full op sequence runs against the real LabHost.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import asyncssh
import pytest
import tree_sitter_pwsh
from kit import SSH_PASSWORD, SSH_USER, ssh_host
from tree_sitter import Language, Node, Parser

from pushinstall.errors import (
    AuthenticationFailed,
    RemoteOpFailed,
    TransportError,
    TransportTimeout,
    Unreachable,
)
from pushinstall.lab import LabHost, agent_cache, catalog, lab_host
from pushinstall.lab.ssh_server import SSHLabEndpoint, wire_host
from pushinstall.model import Connection, Host
from pushinstall.remote import bootstrap, modules, ops
from pushinstall.remote.stdin import (
    LOOP_FUNCTION,
    POWERSHELL_COMMAND,
    bootstrap_line,
    packed_of_line,
    request_line,
    session_script,
)
from pushinstall.secret import Secret
from pushinstall.transports.push import push_file
from pushinstall.transports.ssh import (
    SSHTransport,
    sftp_path,
)

T = TypeVar("T")
USER, PASSWORD = SSH_USER, SSH_PASSWORD
HOSTILE = "'; Remove-Item C:\\ -Recurse # $(whoami) `n \"q\" \u00e9\u4e2d\nline2"


class _StandIn:
    """A minimal simulated host. It records every request (checked against the op schemas) and
    answers: `script` echoes its parameters, `run_process` of `C:\\sleep.exe N` sleeps N
    seconds, `reboot` goes dark for `dark_s`, and the file push ops keep bytes in `files`. It
    defines an agent sent that hashes right, and keeps the hashes of those in `cached`."""

    def __init__(self, name: str, dark_s: float = 1.0) -> None:
        self.name = name
        self.latency = 0.0
        self.fault: str | None = None
        self.lab = SimpleNamespace(drop_connection_on=[])
        self.refused_connects = 0
        self.dark_s = dark_s
        self.dark_until = 0.0
        self.requests: list[dict[str, Any]] = []
        self.files: dict[str, bytes] = {}
        self.on_request: Callable[[dict[str, Any]], None] = lambda req: None
        self.cached: set[str] = set()
        self._lock = threading.Lock()

    def define_agent(self, agent_hash: str, packed: bytes) -> agent_cache.Defined:
        if packed and hashlib.sha256(bootstrap.expand(packed)).hexdigest() == agent_hash:
            self.cached.add(agent_hash)
        return agent_cache.Defined(missing=agent_hash not in self.cached)

    def connection_fault(self) -> str | None:
        return "unreachable" if time.monotonic() < self.dark_until else self.fault

    def refuses_connect(self) -> bool:
        if self.refused_connects > 0:
            self.refused_connects -= 1
            return True
        return False

    def import_file(self, path: str, data: bytes) -> None:
        with self._lock:
            self.files[path] = data

    def handle_line(self, command: str) -> str:
        req = ops.decode_request(command.split("'")[1])
        ops.validate_request(req)
        loads, req = modules.unwrapped(req)     # the module loads a transport put ahead
        with self._lock:
            self.requests.append(req)
        self.on_request(req)
        answer = self._answer(req)
        if loads:
            answer = ops.ok([ops.ok({"name": load["args"]["name"]}) for load in loads] + [answer])
        return "WARNING: noise before the answer\r\n" + ops.encode_answer(answer)

    def _answer(self, req: dict[str, Any]) -> dict[str, Any]:
        op, args = req["op"], req["args"]
        if op == "run_process" and args["path"] == "C:\\sleep.exe":
            time.sleep(float(args["arguments"][0]))
            return ops.ok({"exit_code": 0, "timed_out": False})
        if op == "reboot":
            self.dark_until = time.monotonic() + self.dark_s
            return ops.ok({"boot_time_before": "2026-11-26T18:00:00Z"})
        if op == "file_begin":
            return ops.ok({"temp_path": args["destination"] + ".0123456789ab.pushinstall-part"})
        if op == "file_end":
            data = self.files.pop(args["temp_path"], b"")
            digest = hashlib.sha256(data).hexdigest()
            if digest != args["sha256"]:
                return ops.error("HashMismatch", f"expected {args['sha256']}, got {digest}")
            self.files[args["destination"]] = data
            return ops.ok({"changed": True, "sha256": digest, "size": len(data)})
        return ops.ok({"echo": args.get("parameters", {})})

    def ops_seen(self) -> list[str]:
        return [req["op"] for req in self.requests]


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[SSHLabEndpoint]:
    with SSHLabEndpoint(tmp_path / "ssh-lab") as lab:
        yield lab


def _serve(endpoint: SSHLabEndpoint, name: str = "web01",
           **kwargs: Any) -> tuple[_StandIn, Host]:
    stand_in = _StandIn(name)
    endpoint.add_host(stand_in, username=USER, password=PASSWORD, **kwargs)
    return stand_in, ssh_host(endpoint, name)


@pytest.fixture
def transports() -> Iterator[list[SSHTransport]]:
    opened: list[SSHTransport] = []
    yield opened
    for transport in opened:
        transport.close()


def _open(host: Host, opened: list[SSHTransport]) -> SSHTransport:
    transport = SSHTransport(host)
    opened.append(transport)
    transport.open()
    return transport


def _echo(**parameters: Any) -> dict[str, Any]:
    return ops.request("script", source="$Parameters", parameters=parameters)


def _sleep(seconds: float) -> dict[str, Any]:
    return ops.request("run_process", path="C:\\sleep.exe", arguments=[str(seconds)])


def _when_back(attempt: Callable[[], T], within: float = 10.0) -> T:
    """`attempt()` once the host answers again (it raises Unreachable while dark)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return attempt()
        except Unreachable:
            assert time.monotonic() < deadline, "the host did not come back"
            time.sleep(0.1)


# ---- the wire format -----------------------------------------------------------------------


def test_session_script_is_the_bootstrap_its_two_data_lines_and_the_loop_line() -> None:
    script = session_script(with_agent=True)
    lines = script.splitlines()
    assert len(lines) == 4 and script.endswith("\n")
    assert lines[0] == bootstrap_line() and lines[3] == LOOP_FUNCTION
    assert lines[1] == bootstrap.agent_hash()
    assert bootstrap.expand(packed_of_line(lines[2])) == ops.agent_source().encode("utf-8")
    # the agent and its hash are data lines, never in the script line
    assert bootstrap.agent_hash() not in lines[0] and "H4sI" not in lines[0]
    assert session_script(with_agent=False).splitlines()[2] == ""
    req = ops.request("facts", queries=[{"id": "x", "kind": "file", "path": HOSTILE}])
    line = request_line(ops.encode_request(req))
    assert line.endswith("\n") and line.count("\n") == 1
    assert ops.decode_request(line.strip()) == req
    assert HOSTILE not in line  # values only as base64 data, read by the loop as a line


def test_session_script_is_valid_powershell() -> None:
    parser = Parser(Language(tree_sitter_pwsh.language()))
    text = bootstrap_line() + "\n" + LOOP_FUNCTION + "\n"   # the script lines of it
    tree = parser.parse(text.encode("utf-8"))

    def errors(node: Node) -> int:
        own = int(node.type == "ERROR" or node.is_missing)
        return own + sum(errors(child) for child in node.children)

    assert errors(tree.root_node) == 0
    for banned in ("::new(", "Expand-Archive", "??", "&&"):  # PowerShell 3.0 has none of these
        assert banned not in text


def test_packed_of_line_and_request_line_refuse_other_shapes() -> None:
    assert packed_of_line("") == b""
    with pytest.raises(ValueError):
        packed_of_line("Remove-Item C:\\ -Recurse")
    for bad in ("", "abc\ndef"):
        with pytest.raises(ValueError):
            request_line(bad)


def test_sftp_path_follows_windows_openssh_names() -> None:
    assert sftp_path("C:\\Temp\\ASR setup\\x.exe") == "/C:/Temp/ASR setup/x.exe"
    for bad in ("\\\\server\\share\\x.exe", "Temp\\x.exe", "C:x.exe"):
        with pytest.raises(ValueError):
            sftp_path(bad)


# ---- calls ---------------------------------------------------------------------------------


def test_call_carries_hostile_values_as_data_and_counts_traffic(
    endpoint: SSHLabEndpoint, transports: list[SSHTransport]
) -> None:
    stand_in, host = _serve(endpoint)
    transport = _open(host, transports)
    answer = transport.call(_echo(value=HOSTILE, items=[HOSTILE, 1, True]))
    assert answer == ops.ok({"echo": {"value": HOSTILE, "items": [HOSTILE, 1, True]}})
    assert stand_in.requests == [_echo(value=HOSTILE, items=[HOSTILE, 1, True])]
    counters = endpoint.counters("web01")
    assert counters.connections == 1 and counters.requests == 1
    # the agent travels gzipped: well under its own size, every call
    assert len(ops.agent_source()) / 6 < counters.bytes_in < len(ops.agent_source()) / 2
    assert counters.bytes_out > 0


def test_several_calls_reuse_one_connection(
    endpoint: SSHLabEndpoint, transports: list[SSHTransport]
) -> None:
    stand_in, host = _serve(endpoint)
    transport = _open(host, transports)
    for index in range(5):
        assert ops.result_of(transport.call(_echo(n=index))) == {"echo": {"n": index}}
    assert endpoint.counters("web01").connections == 1
    assert stand_in.ops_seen() == ["script"] * 5


def test_latency_is_served_per_request(
    endpoint: SSHLabEndpoint, transports: list[SSHTransport]
) -> None:
    stand_in, host = _serve(endpoint)
    stand_in.latency = 0.3
    transport = _open(host, transports)
    started = time.monotonic()
    transport.call(_echo())
    assert time.monotonic() - started >= 0.3


def test_a_long_op_outlives_the_read_timeout(
    endpoint: SSHLabEndpoint, transports: list[SSHTransport]
) -> None:
    # Scaled down: a 2 s silent "installer" against a 1 s read timeout, the least the ssh
    # transport takes (keepalives answer).
    _, host = _serve(endpoint)
    host.connection.read_timeout = 1.0
    transport = _open(host, transports)
    answer = transport.call(_sleep(2))
    assert ops.result_of(answer) == {"exit_code": 0, "timed_out": False}


def test_the_call_deadline_raises_transport_timeout(
    endpoint: SSHLabEndpoint, transports: list[SSHTransport]
) -> None:
    _, host = _serve(endpoint)
    transport = _open(host, transports)
    expected = r"no answer to 'run_process' within 0\.5 s"
    with pytest.raises(TransportTimeout, match=expected) as caught:
        transport.call(_sleep(2), timeout=0.5)
    assert caught.value.hint
    # the connection is still good for the next call
    assert ops.result_of(transport.call(_echo())) == {"echo": {}}


def test_another_remote_shell_gives_no_answer(endpoint: SSHLabEndpoint) -> None:
    _serve(endpoint)
    address, port = endpoint.address("web01")

    async def run() -> asyncssh.SSHCompletedProcess:
        async with asyncssh.connect(address, port, username=USER, password=PASSWORD,
                                    known_hosts=str(endpoint.known_hosts)) as conn:
            return await conn.run("cmd.exe /c dir", input="", encoding="utf-8")

    result = asyncio.run(run())
    assert result.exit_status == 1 and "not recognized" in str(result.stderr)
    with pytest.raises(RemoteOpFailed, match="no readable answer") as caught:
        ops.decode_answer(str(result.stdout) + str(result.stderr), host="web01")
    assert caught.value.error_type == "NoAnswer"
    assert POWERSHELL_COMMAND.startswith("powershell ")


# ---- files ---------------------------------------------------------------------------------


def test_put_file_hash_mismatch_is_reported_by_the_target(
    endpoint: SSHLabEndpoint, transports: list[SSHTransport], tmp_path: Path
) -> None:
    _, host = _serve(endpoint)
    local = tmp_path / "x.bin"
    local.write_bytes(b"not what the playbook pinned")
    transport = _open(host, transports)
    with pytest.raises(RemoteOpFailed) as caught:
        transport.put_file(local, "C:\\Temp\\x.bin", "0" * 64)
    assert caught.value.error_type == "HashMismatch"


def test_put_file_refuses_a_unc_destination(
    endpoint: SSHLabEndpoint, transports: list[SSHTransport], tmp_path: Path
) -> None:
    stand_in, host = _serve(endpoint)
    local = tmp_path / "x.bin"
    local.write_bytes(b"x")
    transport = _open(host, transports)
    with pytest.raises(RemoteOpFailed) as caught:
        transport.put_file(local, "\\\\srv\\share\\x.bin", "0" * 64)
    assert caught.value.error_type == "InvalidArgument"
    assert stand_in.requests == []


# ---- faults --------------------------------------------------------------------------------


def test_wrong_password_is_authentication_failed_with_a_hint(
    endpoint: SSHLabEndpoint, transports: list[SSHTransport]
) -> None:
    _serve(endpoint)
    host = ssh_host(endpoint, "web01", password="Wrong-Passw0rd")
    with pytest.raises(AuthenticationFailed) as caught:
        _open(host, transports)
    error = caught.value
    assert error.host == "web01" and not error.transient
    assert "username and password" in (error.hint or "")
    assert "Wrong-Passw0rd" not in str(error) and PASSWORD not in str(error)


def test_bad_credentials_fault_fails_every_login(
    endpoint: SSHLabEndpoint, transports: list[SSHTransport]
) -> None:
    stand_in, host = _serve(endpoint)
    stand_in.fault = "bad_credentials"
    with pytest.raises(AuthenticationFailed):
        _open(host, transports)


def test_an_unreachable_host_refuses_then_comes_back(
    endpoint: SSHLabEndpoint, transports: list[SSHTransport]
) -> None:
    stand_in = _StandIn("db01")
    stand_in.fault = "unreachable"
    endpoint.add_host(stand_in, username=USER, password=PASSWORD)
    host = ssh_host(endpoint, "db01")
    with pytest.raises(Unreachable, match="connection refused") as caught:
        _open(host, transports)
    assert caught.value.transient and "sshd" in (caught.value.hint or "")
    stand_in.fault = None
    transport = _when_back(lambda: _open(host, transports))
    assert ops.result_of(transport.call(_echo())) == {"echo": {}}


def test_refused_first_connects_are_unreachable_then_the_host_answers(
    endpoint: SSHLabEndpoint, transports: list[SSHTransport]
) -> None:
    stand_in, host = _serve(endpoint)
    stand_in.refused_connects = 1
    with pytest.raises(Unreachable, match="during connect") as caught:
        _open(host, transports)
    assert caught.value.transient
    assert ops.result_of(_open(host, transports).call(_echo())) == {"echo": {}}
    assert endpoint.counters("web01").connections == 2


def test_reboot_goes_dark_then_the_next_call_reconnects(
    endpoint: SSHLabEndpoint, transports: list[SSHTransport]
) -> None:
    stand_in, host = _serve(endpoint)
    # Dark until the call below has met it, then back: a dark window of wall time would let
    # that call through after a stall of this process longer than it (load 12).
    stand_in.dark_s = 3600.0
    transport = _open(host, transports)
    transport.call(ops.request("reboot", delay_s=0))
    with pytest.raises(Unreachable):  # refused, or dropped if the call won the race
        transport.call(ops.request("facts", queries=[]))
    stand_in.dark_until = 0.0
    assert ops.result_of(_when_back(lambda: transport.call(_echo()))) == {"echo": {}}
    assert endpoint.counters("web01").connections == 2
    assert stand_in.ops_seen() == ["reboot", "script"]


def test_a_dropped_connection_during_a_non_idempotent_op_is_not_resent(
    endpoint: SSHLabEndpoint, transports: list[SSHTransport]
) -> None:
    stand_in, host = _serve(endpoint)
    stand_in.lab.drop_connection_on = ["run_process"]
    transport = _open(host, transports)
    req = ops.request("run_process", path="C:\\Temp\\UnifiedAgent.exe", arguments=["/q"])
    assert not ops.is_idempotent(req)
    with pytest.raises(Unreachable) as caught:
        transport.call(req)
    message = str(caught.value)
    assert "'run_process' was in flight" in message and "may or may not have run" in message
    assert "never re-sent" in (caught.value.hint or "")
    assert stand_in.ops_seen() == ["run_process"]  # it ran once and was not sent again
    # the next call opens a new connection
    assert ops.result_of(transport.call(_echo())) == {"echo": {}}
    assert stand_in.ops_seen() == ["run_process", "script"]


def test_an_unknown_host_key_is_refused_with_a_hint(
    endpoint: SSHLabEndpoint, transports: list[SSHTransport], tmp_path: Path
) -> None:
    _serve(endpoint)
    empty = tmp_path / "known_hosts"
    empty.write_text("", encoding="utf-8")
    host = ssh_host(endpoint, "web01", known_hosts=str(empty))
    with pytest.raises(TransportError) as caught:
        _open(host, transports)
    assert type(caught.value) is TransportError
    assert "host_key_checking: false" in (caught.value.hint or "")
    unchecked = ssh_host(endpoint, "web01", known_hosts=str(empty), host_key_checking=False)
    assert ops.result_of(_open(unchecked, transports).call(_echo())) == {"echo": {}}


def test_public_key_authentication(endpoint: SSHLabEndpoint) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    stand_in = _StandIn("key01")
    endpoint.add_host(stand_in, username=USER, password=PASSWORD, authorized_keys=[key])
    address, port = endpoint.address("key01")
    # the agent, its loop, one request line, the empty line that ends the loop
    request = request_line(ops.encode_request(_echo(via="key")))
    script = session_script(with_agent=True) + request + "\n"

    async def run(client_key: asyncssh.SSHKey) -> str:
        async with asyncssh.connect(address, port, username=USER, client_keys=[client_key],
                                    known_hosts=str(endpoint.known_hosts),
                                    preferred_auth="publickey") as conn:
            result = await conn.run(POWERSHELL_COMMAND, input=script, encoding="utf-8")
            return str(result.stdout)

    assert ops.decode_answer(asyncio.run(run(key))) == ops.ok({"echo": {"via": "key"}})
    with pytest.raises(asyncssh.PermissionDenied):
        asyncio.run(run(asyncssh.generate_private_key("ssh-ed25519")))


def test_a_server_that_never_speaks_is_a_connect_timeout(transports: list[SSHTransport]) -> None:
    with socket.socket() as silent:  # accepts TCP (the kernel does) but never sends a banner
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        host = Host("mute01", connection=Connection(
            transport="ssh", address="127.0.0.1", port=silent.getsockname()[1], username=USER,
            password=Secret(PASSWORD), connect_timeout=0.5))
        started = time.monotonic()
        with pytest.raises(TransportTimeout) as caught:
            _open(host, transports)
    assert time.monotonic() - started < 5
    assert caught.value.transient and "connect_timeout" in (caught.value.hint or "")


class _StallingProxy:
    """A loopback TCP proxy that, once `stall` is set, swallows traffic both ways: the network
    path goes silent while both ends stay connected."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.stall = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        client, _ = self.listener.accept()
        server = socket.create_connection(self.target)
        for source, sink in ((client, server), (server, client)):
            threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if not self.stall.is_set():
                    sink.sendall(data)


def test_a_silent_network_path_is_a_read_timeout(
    endpoint: SSHLabEndpoint, transports: list[SSHTransport]
) -> None:
    stand_in, direct = _serve(endpoint)
    proxy = _StallingProxy(endpoint.address("web01"))
    host = ssh_host(endpoint, "web01", read_timeout=1.0, connect_timeout=2.0)
    host.connection.port = proxy.port
    host.connection.host_key_checking = False
    transport = _open(host, transports)
    assert ops.result_of(transport.call(_echo())) == {"echo": {}}
    stand_in.on_request = lambda req: proxy.stall.set()  # silence once the op is running
    started = time.monotonic()
    with pytest.raises(TransportTimeout, match="stopped answering") as caught:
        transport.call(_sleep(10))
    # the read timeout ended it: not before 1 s, and well before the 10 s op could have;
    # 8 s, not 4, leaves room for a loaded machine's late timers (load 12 on 2 cores)
    assert 1.0 <= time.monotonic() - started < 8
    assert caught.value.transient
    proxy.listener.close()
    assert direct.connection.port != proxy.port


# ---- against the real lab host model -------------------------------------------------------

PRODUCT_ID = "{275197FC-14FD-4560-A5EB-38217F80CBD1}"
INSTALL_DIR = "C:\\Program Files (x86)\\Microsoft Azure Site Recovery"


def _serve_lab(endpoint: SSHLabEndpoint, state_dir: Path, name: str = "asr01",
               **lab_vars: Any) -> tuple[LabHost, Host]:
    host_model = lab_host(name, {"reboot_seconds": 1, **lab_vars}, state_dir)
    endpoint.add_host(host_model, username=USER, password=PASSWORD)
    return host_model, ssh_host(endpoint, name)


def _results(transport: SSHTransport, req: dict[str, Any]) -> Any:
    return ops.result_of(transport.call(req, timeout=30))


def test_every_op_and_the_asr_sequence_over_ssh(
    endpoint: SSHLabEndpoint, transports: list[SSHTransport], state_dir: Path, tmp_path: Path
) -> None:
    model, host = _serve_lab(endpoint, state_dir)
    transport = _open(host, transports)
    req = ops.request
    gather = ops.batch([req("facts", queries=[
        {"id": "os", "kind": "os"}, {"id": "reboot", "kind": "pending_reboot"},
        {"id": "asr", "kind": "product", "product_id": PRODUCT_ID},
        {"id": "svc", "kind": "service", "name": "svagents"},
        {"id": "disk", "kind": "disk", "drive": "C:"},
        {"id": "cs", "kind": "tcp", "host": "10.0.0.115", "port": 443},
        {"id": "reg", "kind": "registry", "key": "HKLM:\\SOFTWARE\\Pushinstall", "name": "Run"},
        {"id": "bundle", "kind": "file", "path": "C:\\Temp\\ASR\\bundle.exe"},
    ])])
    before = _results(transport, gather)[0]["result"]
    assert before["asr"]["installed"] is False and before["svc"]["exists"] is False
    assert before["cs"]["reachable"] is True and before["reboot"]["pending"] is False

    share = catalog.share_path(catalog.ASR_BUNDLE)
    assert _results(transport, req("ensure_directory", path="C:\\Temp\\ASR")) == {"changed": True}
    got = _results(transport, req("download", source=share, destination="C:\\Temp\\ASR\\bundle.exe",
                                  sha256=catalog.sha256_of(share), run_as="system"))
    assert got["changed"] and got["sha256"] == catalog.sha256_of(share)
    extract = _results(transport, req("run_process", path="C:\\Temp\\ASR\\bundle.exe",
                                      arguments=["/q", "/x:C:\\Temp\\ASR\\Extracted"]))
    assert extract["exit_code"] == 0
    passphrase = "C:\\Temp\\ASR\\passphrase.txt"
    assert _results(transport, req("write_secret", path=passphrase,
                                   content="lab-passphrase")) == {"changed": True}
    install = _results(transport, req(
        "run_process", path="C:\\Temp\\ASR\\Extracted\\UnifiedAgent.exe",
        arguments=["/Role", "MS", "/InstallLocation", INSTALL_DIR, "/Platform", "VmWare",
                   "/Silent"]))
    assert install["exit_code"] == 0
    assert install["command_line"].count(f'"{INSTALL_DIR}"') == 1  # quoted as one argv entry
    register = _results(transport, req(
        "run_process", path=f"{INSTALL_DIR}\\agent\\UnifiedAgentConfigurator.exe",
        arguments=["/CSEndPoint", "10.0.0.115", "/PassphraseFilePath", passphrase]))
    assert register["exit_code"] == 0
    assert "lab-passphrase" not in str(model.calls)  # the op log masks the secret
    assert _results(transport, req("remove_file", path=passphrase)) == {"removed": True}
    service = _results(transport, req("set_service", name="svagents", state="running",
                                      start_mode="Automatic"))
    assert service["status"] == "Running"
    assert _results(transport, req("set_registry", key="HKLM:\\SOFTWARE\\Pushinstall",
                                   name="Run", value=HOSTILE, type="String")) == {"changed": True}
    zipped = catalog.url(catalog.CONFIG_ZIP)
    _results(transport, req("download", source=zipped, destination="C:\\Temp\\ASR\\cfg.zip"))
    expanded = _results(transport, req("expand_archive", path="C:\\Temp\\ASR\\cfg.zip",
                                       destination="C:\\Temp\\ASR\\cfg"))
    assert expanded["changed"] is True and expanded["files"] >= 1
    script = _results(transport, req("script", source="$Parameters.x",
                                     parameters={"x": HOSTILE}))
    assert script["success"] is True
    local = tmp_path / "small.bin"
    local.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    chunked = push_file(transport, local, "C:\\Temp\\ASR\\chunked.bin", digest, chunk_size=1 << 20)
    assert chunked["sha256"] == digest
    assert transport.put_file(local, "C:\\Temp\\ASR\\sftp.bin", digest)["sha256"] == digest
    pushed = _results(transport, req("facts", queries=[
        {"id": name, "kind": "file", "path": f"C:\\Temp\\ASR\\{name}.bin"}
        for name in ("chunked", "sftp")]))
    assert pushed["chunked"]["sha256"] == pushed["sftp"]["sha256"] == digest

    booted = _results(transport, req("reboot", delay_s=0))["boot_time_before"]
    # Held dark until the call below has met it: `reboot_seconds` is wall time from the
    # restart, and a stall of this process longer than it (load 12) would let the call through.
    model.lab.unreachable = True
    with pytest.raises(Unreachable):
        transport.call(gather)
    model.lab.unreachable = False
    after = _when_back(lambda: _results(transport, gather))[0]["result"]
    assert after["os"]["last_boot_time"] != booted
    assert after["asr"]["installed"] is True and after["asr"]["version"] == catalog.ASR_VERSION
    assert after["svc"]["status"] == "Running"
    assert after["reg"]["value"] == HOSTILE  # arrived as data
    assert set(model.op_log) == set(ops.OP_NAMES)


def test_a_20_mb_push_lands_in_the_lab_host_with_its_sha256(
    endpoint: SSHLabEndpoint, transports: list[SSHTransport], state_dir: Path, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    model, host = _serve_lab(endpoint, state_dir)
    local = tmp_path / "UnifiedAgent.exe"
    local.write_bytes(os.urandom(20 * 1024 * 1024))
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    transport = _open(host, transports)
    with caplog.at_level(logging.DEBUG, logger="pushinstall.transports.ssh"):
        result = transport.put_file(local, "C:\\Temp\\ASR\\UnifiedAgent.exe", digest)
    assert result == {"changed": True, "sha256": digest, "size": 20 * 1024 * 1024}
    assert any("MB/s" in record.getMessage() for record in caplog.records)
    counters = endpoint.counters("asr01")
    assert counters.connections == 1 and counters.bytes_in >= 20 * 1024 * 1024
    landed = model.file_content("C:\\Temp\\ASR\\UnifiedAgent.exe")
    assert hashlib.sha256(landed).hexdigest() == digest
    assert model.op_log == ["file_begin", "file_end"]
    fact = _results(transport, ops.request("facts", queries=[
        {"id": "f", "kind": "file", "path": "C:\\Temp\\ASR\\UnifiedAgent.exe"}]))
    assert fact["f"]["sha256"] == digest


def test_a_full_disk_refuses_the_push_before_any_byte_moves(
    endpoint: SSHLabEndpoint, transports: list[SSHTransport], state_dir: Path, tmp_path: Path
) -> None:
    _, host = _serve_lab(endpoint, state_dir, disk_free_bytes=1024 * 1024)
    local = tmp_path / "big.bin"
    local.write_bytes(b"x" * (2 * 1024 * 1024))
    transport = _open(host, transports)
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    with pytest.raises(RemoteOpFailed) as caught:
        transport.put_file(local, "C:\\Temp\\big.bin", digest)
    assert caught.value.error_type == "DiskFull"
    assert endpoint.counters("asr01").bytes_in < 1024 * 1024


def test_lab_var_faults_over_ssh(
    endpoint: SSHLabEndpoint, transports: list[SSHTransport], state_dir: Path
) -> None:
    _, bad = _serve_lab(endpoint, state_dir, "bad01", bad_credentials=True)
    _, dark = _serve_lab(endpoint, state_dir, "dark01", unreachable=True)
    model, dropping = _serve_lab(endpoint, state_dir, "drop01", drop_connection_on=["run_process"])
    with pytest.raises(AuthenticationFailed):
        _open(bad, transports)
    with pytest.raises(Unreachable, match="connection refused"):
        _open(dark, transports)
    transport = _open(dropping, transports)
    with pytest.raises(Unreachable, match="may or may not have run"):
        transport.call(ops.request("run_process", path="C:\\Windows\\System32\\cmd.exe",
                                   arguments=["/c", "exit", "0"]))
    # it ran once on the host (its module went along), and was not sent again
    assert model.op_log == ["module", "run_process"]


def test_a_dark_hosts_port_stays_held_so_no_other_server_answers_for_it(
    endpoint: SSHLabEndpoint, transports: list[SSHTransport], state_dir: Path
) -> None:
    """A dark host's port is refused, not free: in a suite of parallel processes a free port
    was given to another test's server, and the dark host answered (DID NOT RAISE)."""
    model, dark = _serve_lab(endpoint, state_dir, "dark02", unreachable=True)
    port = endpoint.address("dark02")[1]
    taker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with contextlib.closing(taker), pytest.raises(OSError, match="in use"):
        taker.bind(("127.0.0.1", port))
    with pytest.raises(Unreachable, match="connection refused"):
        _open(dark, transports)
    model.lab.unreachable = False       # the fault clears: the same port listens again
    deadline = time.monotonic() + 10
    while True:
        try:
            assert _open(dark, transports).call(ops.request("facts", queries=[]))["ok"]
            break
        except Unreachable:
            assert time.monotonic() < deadline, "the host did not listen again"
            time.sleep(0.05)


def test_wire_host_serves_an_inventory_lab_host_over_ssh(
    transports: list[SSHTransport], state_dir: Path
) -> None:
    inventory_host = Host("lab01", vars={"lab": {"installed_version": catalog.ASR_VERSION}},
                          connection=Connection(transport="lab"))
    wired = wire_host(inventory_host, state_dir)
    assert wired.connection.transport == "ssh" and wired.connection.address == "127.0.0.1"
    assert wired.connection.host_key_checking and wired.connection.known_hosts
    assert inventory_host.connection.transport == "lab"  # the inventory's host is not changed
    transport = _open(wired, transports)
    facts = _results(transport, ops.request("facts", queries=[
        {"id": "asr", "kind": "product", "product_id": PRODUCT_ID}]))
    assert facts["asr"]["installed"] is True
    assert wire_host(inventory_host, state_dir).connection.port == wired.connection.port
    assert lab_host("lab01", None, state_dir).op_log == ["facts"]


def test_a_host_restarted_another_way_is_dark_over_ssh_too(
    endpoint: SSHLabEndpoint, transports: list[SSHTransport], state_dir: Path
) -> None:
    model, host = _serve_lab(endpoint, state_dir)
    transport = _open(host, transports)
    assert ops.result_of(model.handle(ops.request("reboot", delay_s=0)))  # e.g. the lab transport
    model.lab.unreachable = True  # held dark until both calls have met it (see the ASR test)
    with pytest.raises(Unreachable):
        transport.call(ops.request("facts", queries=[]))
    with pytest.raises(Unreachable, match="connection refused"):
        _open(host, transports)
    model.lab.unreachable = False
    back = _when_back(lambda: _open(host, transports))  # reboot_seconds is 1
    assert _results(back, ops.request("facts", queries=[])) == {}


# ---- the engine over ssh -------------------------------------------------------------------

REPO = Path(__file__).resolve().parent.parent


class _Events:
    """A sink that keeps every event."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def emit(self, event: Any) -> None:
        self.events.append(event)

    def close(self) -> None:
        pass


def _run_fleet(hosts: list[Host], factory: Callable[[Host], Any], mode: str = "run",
               sink: _Events | None = None) -> Any:
    from pushinstall.engine import RunOptions, run_fleet
    from pushinstall.engine.support import Backoff
    from pushinstall.playbook import load_playbook

    playbook = load_playbook(str(REPO / "playbooks" / "asr-mobility.yml"))
    options = RunOptions(mode=mode, backoff=Backoff(0.05, 0.2))
    return run_fleet(hosts, playbook, options, [sink or _Events()], transport_factory=factory)


def test_the_asr_playbook_runs_green_over_ssh_as_over_the_in_process_lab(
    tmp_path: Path,
) -> None:
    from pushinstall.inventory import load_inventory
    from pushinstall.lab.transport import LabTransport

    hosts = list(load_inventory([str(REPO / "inventories" / "lab.yml")]).hosts.values())
    over_ssh, in_process = tmp_path / "ssh-state", tmp_path / "lab-state"
    runs = {}
    for name, factory in (
        ("ssh", lambda host: SSHTransport(wire_host(host, over_ssh))),
        ("lab", lambda host: LabTransport(host, in_process)),
    ):
        run = _run_fleet(hosts, factory)
        check = _run_fleet(hosts, factory, mode="check")
        runs[name] = ({h: (o.status, o.steps) for h, o in run.hosts.items()}, run.exit_code,
                      {h: o.status for h, o in check.hosts.items()}, check.exit_code)
    statuses, exit_code, checked, check_exit = runs["ssh"]
    assert exit_code == 0 and check_exit == 0
    assert {status for status, _ in statuses.values()} == {"changed"}
    assert set(checked.values()) == {"compliant"}
    assert runs["ssh"] == runs["lab"]  # the wire changes nothing about the outcome


def test_the_engine_does_not_resend_a_dropped_install_over_ssh(tmp_path: Path) -> None:
    state = tmp_path / "state"
    common = {"cs_endpoint": "10.0.0.115", "asr_passphrase": Secret("lab-passphrase"),
              "asr_installer_share": catalog.SHARE}
    dropping = Host("drop01", vars={**common, "lab": {"drop_connection_on": ["run_process"]}},
                    connection=Connection(transport="lab"))
    healthy = Host("ok01", vars={**common, "lab": {}}, connection=Connection(transport="lab"))
    sink = _Events()
    run = _run_fleet([dropping, healthy], lambda host: SSHTransport(wire_host(host, state)),
                     sink=sink)
    assert run.hosts["ok01"].status == "changed"
    assert run.hosts["drop01"].status == "failed"
    failures = [event.message for event in sink.events
                if getattr(event, "host", "") == "drop01" and getattr(event, "status", "") ==
                "failed" and getattr(event, "step", "")]
    assert failures and "may or may not have run" in failures[0]
    assert lab_host("drop01", None, state).op_log.count("run_process") == 1
