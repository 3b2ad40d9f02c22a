"""How the agent travels (issue 12) and its cache on the target (issues 12 and 14), over the
real wires: pypsrp and pywinrm with NTLM and message encryption against the lab's WS-Man
endpoint, asyncssh against the lab's SSH endpoint.

Mocked: the Windows machine (a `LabHost` answers in its place; its cache is files in its state,
so a second session finds them and a changed file is caught by its hash). The lab does not
trust the bootstrap: it expands the `Agent` parameter it received and hashes it, as
bootstrap.ps1 does. That .NET's GZipStream expands what the controller sends byte for byte,
and the C# side of the cache, run under mono (`tests/agent_host`).
"""

from __future__ import annotations

import base64
import hashlib
import types
from pathlib import Path
from typing import Any

import pytest
from agent_host import AgentHost, SharedHost
from kit import FAST, LAB_INVENTORY, SHIPPED, SSH_PASSWORD, SSH_USER, Wire, ssh_host

from pushinstall.engine import RunOptions, run_fleet
from pushinstall.errors import RemoteOpFailed
from pushinstall.inventory import load_inventory
from pushinstall.lab import LabHost, agent_cache, lab_host, received
from pushinstall.lab.ssh_server import SSHLabEndpoint
from pushinstall.playbook import load_playbook
from pushinstall.remote import bootstrap, ops, sealing, stdin
from pushinstall.runner import resolve_run_secrets
from pushinstall.transports import psrp
from pushinstall.transports.psrp import PSRPTransport
from pushinstall.transports.ssh import SSHTransport
from pushinstall.transports.winrm import WinRMTransport

AGENT = ops.agent_source()
GATHER = ops.batch([ops.request("facts", queries=[{"id": "os", "kind": "os"}])])


def session(wire: Wire, name: str, request: dict[str, Any] = GATHER) -> dict[str, int]:
    """One psrp session to `name` answering `request`: what the lab's endpoint saw of it."""
    counters = wire.endpoint.counters(name)        # live: read the numbers before and after
    requests, bytes_in = counters.requests, counters.bytes_in
    transport = PSRPTransport(wire.host(name))
    transport.open()
    answer = transport.call(request)
    transport.close()
    assert answer["ok"] is True, answer
    return {"requests": counters.requests - requests, "bytes_in": counters.bytes_in - bytes_in}


def sent_agents(texts: list[str]) -> list[str]:
    """The packed agents among the recorded parameter values (the bootstrap's `Agent`, a byte
    array the lab records as base64)."""
    return [t for t in texts if t.startswith("H4sI")]      # base64 of the gzip magic


@pytest.fixture
def recorded() -> Any:
    texts = received.start()
    yield texts
    received.stop()


def test_the_packed_agent_expands_to_the_agent_text_byte_for_byte(wire: Wire,
                                                                 recorded: list[str]) -> None:
    model = wire.serve("h1")
    session(wire, "h1")
    assert bootstrap.script() in recorded
    (packed,) = sent_agents(recorded)
    assert bootstrap.expand(base64.b64decode(packed)) == AGENT.encode("utf-8")
    # what the lab stored is what it expanded, under the text's sha256
    cached = model.file_content(agent_cache.agent_path(bootstrap.agent_hash()))
    assert cached == AGENT.encode("utf-8")
    assert hashlib.sha256(cached).hexdigest() == bootstrap.agent_hash()


def test_dotnet_gzipstream_expands_what_the_controller_sends(agent_session: SharedHost,
                                                              tmp_path: Path) -> None:
    """bootstrap.ps1 expands with System.IO.Compression.GZipStream: mono's runs it here."""
    agent = agent_session.host(tmp_path)
    expanded = agent.command("GUNZIP " + base64.b64encode(bootstrap.packed(AGENT)).decode())
    assert base64.b64decode(expanded) == AGENT.encode("utf-8")


def test_the_lab_checks_the_sent_agent_against_its_hash(wire: Wire) -> None:
    """A lab host defines nothing from an Agent that does not hash to Hash (the MISSING
    line), nor from a text that hashes right but is not this version's agent."""
    wire.serve("h1")
    transport = PSRPTransport(wire.host("h1"))
    transport.open()
    other = AGENT.replace("PUSHINSTALL-KEY:", "PUSHINSTALL-KEY-X:")
    wrong: dict[str, str | bytes] = {"Hash": bootstrap.agent_hash(),
                                     "Agent": bootstrap.packed(other)}
    output = transport._run(bootstrap.script(), "define", 30, wrong, cmdlet=False)
    assert bootstrap.missing(output)
    forged = bootstrap.parameters(True, agent=other)
    with pytest.raises(RemoteOpFailed, match="not this version's agent"):
        transport._guard(lambda: ops.result_of(ops.decode_answer(transport._run(
            bootstrap.script(), "define", 30, forged, cmdlet=False))), "define", False)
    transport.close()


def test_first_contact_then_a_later_run_as_the_lab_counts_them(wire: Wire,
                                                              recorded: list[str]) -> None:
    """Issue 12's targets for a gather: at most 8 HTTP requests on first contact, at most
    25 KB later; the later run sends the hash, not the agent, and compiles nothing."""
    model = wire.serve("h1")
    first = session(wire, "h1")
    assert first["requests"] <= 8, first
    assert len(sent_agents(recorded)) == 1 and model.compiles == 1
    recorded.clear()
    later = session(wire, "h1")
    assert later["requests"] <= 8 and later["bytes_in"] <= 25_000, later
    assert sent_agents(recorded) == [] and model.compiles == 1
    assert bootstrap.agent_hash() in recorded       # the hash went, as a parameter value
    assert first["bytes_in"] - later["bytes_in"] > len(bootstrap.packed(AGENT)) * 4 // 3


def test_first_contact_sends_at_most_45_kb(wire: Wire) -> None:
    """Issue 12's first-contact target for a gather; the ops that change a machine are not in
    what goes (remote/modules.py): it was 49,851 B with them."""
    wire.serve("h1")
    first = session(wire, "h1")
    assert first["bytes_in"] <= 45_000, first


def _cached_agent(model: LabHost) -> str:
    return agent_cache.agent_path(bootstrap.agent_hash())


def _change_cached_agent(model: LabHost, change: str) -> str:
    """Tamper with the agent `model` cached, or remove it; its path."""
    path = _cached_agent(model)
    if change == "tampered":
        model.import_file(path, AGENT.replace("Stop", "Continue").encode("utf-8"))
    else:
        model.state.fs.remove(path)
    return path


@pytest.mark.parametrize("change", ["tampered", "gone"])
def test_a_changed_or_missing_cached_agent_is_sent_again_and_replaced(
        wire: Wire, recorded: list[str], change: str) -> None:
    model = wire.serve("h1")
    session(wire, "h1")
    path = _change_cached_agent(model, change)
    recorded.clear()
    later = session(wire, "h1")
    # the hash-only bootstrap answered MISSING and ran nothing; the agent then went along
    assert recorded.count(bootstrap.script()) == 2
    assert len(sent_agents(recorded)) == 1
    assert later["requests"] <= 10
    assert model.file_content(path) == AGENT.encode("utf-8")
    assert model.compiles == 1        # the compiled core in the cache was still good
    assert [c["op"] for c in model.calls].count("batch") == 2    # one gather per session


def test_a_tampered_cached_assembly_is_compiled_again_and_replaced(wire: Wire) -> None:
    model = wire.serve("h1")
    session(wire, "h1")
    source = agent_cache.core_hash()
    (dll,) = agent_cache.assemblies(model.state.fs, source)
    model.import_file(dll, agent_cache.ASSEMBLY_HEADER + b"not what was compiled\n")
    session(wire, "h1")
    assert model.compiles == 2
    (fresh,) = agent_cache.assemblies(model.state.fs, source)
    assert fresh != dll
    assert Path(fresh.replace("\\", "/")).name == (
        f"{source}-{hashlib.sha256(model.file_content(fresh)).hexdigest()}.dll")
    assert model.state.fs.entry(fresh)["secret"] is True       # SYSTEM + Administrators


def test_the_cache_outlives_the_lab_process(wire: Wire) -> None:
    """The copy lives in the host's saved state: a host read back from its file has it."""
    model = wire.serve("h1")
    session(wire, "h1")
    model.flush()
    again = LabHost("h1", state_dir=model.path.parent.parent)
    assert again.file_content(_cached_agent(model)) == AGENT.encode("utf-8")
    assert agent_cache.define(again.state.fs, bootstrap.agent_hash(), "").compiled is False


def test_a_first_request_with_a_secret_waits_for_the_key(wire: Wire,
                                                          recorded: list[str]) -> None:
    """write_secret first: the bootstrap runs alone, then the request goes sealed."""
    wire.serve("h1")
    secret = "Fi-rst-Secret-42"
    request = ops.request("write_secret", path="C:\\Temp\\p.txt", content=secret)
    assert sealing.has_secret(request)
    counts = session(wire, "h1", request)
    assert counts["requests"] <= 10
    assert not any(secret in text for text in recorded)
    assert not any(secret.encode() in _decoded(text) for text in recorded)


def _decoded(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        return b""


def test_the_controller_forgets_a_target_that_refused_the_agent(tmp_path: Path) -> None:
    seen = bootstrap.Seen(tmp_path / "agents")
    assert not seen.holds("127.0.0.1:5985", "a" * 64)
    seen.remember("127.0.0.1:5985", "a" * 64)
    assert seen.holds("127.0.0.1:5985", "a" * 64)
    assert not seen.holds("127.0.0.1:5986", "a" * 64)
    seen.remember("127.0.0.1:5985", None)
    assert not seen.holds("127.0.0.1:5985", "a" * 64)


# ---------------------------------------------------------------- over WinRS and SSH (stdin)


class StdinWire:
    """One lab host reached over winrm (the WS-Man endpoint) or ssh (the SSH endpoint)."""

    def __init__(self, kind: str, wire: Wire, ssh: SSHLabEndpoint) -> None:
        self.kind, self.wire, self.ssh = kind, wire, ssh

    def serve(self, name: str) -> LabHost:
        if self.kind == "winrm":
            return self.wire.serve(name)
        model = lab_host(name)
        self.ssh.add_host(model, username=SSH_USER, password=SSH_PASSWORD)
        return model

    def bytes_in(self, name: str) -> int:
        counters = (self.wire.endpoint if self.kind == "winrm" else self.ssh).counters(name)
        return int(counters.bytes_in)

    def session(self, name: str) -> int:
        """One connection to `name` answering GATHER: the bytes it sent to the host."""
        before = self.bytes_in(name)
        transport = (WinRMTransport(self.wire.host(name, "winrm")) if self.kind == "winrm"
                     else SSHTransport(ssh_host(self.ssh, name)))
        try:
            transport.open()
            answer = transport.call(GATHER)
        finally:
            transport.close()
        assert answer["ok"] is True, answer
        return self.bytes_in(name) - before


@pytest.fixture(params=["winrm", "ssh"])
def over_stdin(request: pytest.FixtureRequest, wire: Wire, tmp_path: Path) -> Any:
    with SSHLabEndpoint(tmp_path / "ssh-lab") as ssh:
        yield StdinWire(request.param, wire, ssh)


def test_over_stdin_the_agent_goes_once_then_only_its_hash(over_stdin: StdinWire,
                                                           recorded: list[str]) -> None:
    """The stdin lines a WinRS/SSH agent process reads: the bootstrap line, the hash, the
    packed agent (expanding byte for byte to the agent text, stored under its sha256), the
    loop line; a later connection sends an empty agent line and compiles nothing."""
    model = over_stdin.serve("h1")
    first = over_stdin.session("h1")
    assert recorded[:4] == [stdin.bootstrap_line(), bootstrap.agent_hash(), recorded[2],
                            stdin.LOOP_FUNCTION]
    assert bootstrap.expand(stdin.packed_of_line(recorded[2])) == AGENT.encode("utf-8")
    assert model.file_content(_cached_agent(model)) == AGENT.encode("utf-8")
    assert model.compiles == 1
    recorded.clear()
    later = over_stdin.session("h1")
    assert recorded[:4] == [stdin.bootstrap_line(), bootstrap.agent_hash(), "",
                            stdin.LOOP_FUNCTION]
    assert sent_agents(recorded) == [] and model.compiles == 1
    assert first - later > len(bootstrap.packed(AGENT)) * 4 // 3


@pytest.mark.parametrize("change", ["tampered", "gone"])
def test_over_stdin_a_changed_or_missing_cached_agent_is_sent_again_and_replaced(
        over_stdin: StdinWire, recorded: list[str], change: str) -> None:
    model = over_stdin.serve("h1")
    over_stdin.session("h1")
    path = _change_cached_agent(model, change)
    recorded.clear()
    over_stdin.session("h1")
    # the hash-only process answered MISSING and ended before its loop line; a second one
    # got the agent
    assert recorded.count(stdin.bootstrap_line()) == 2
    assert recorded.count(stdin.LOOP_FUNCTION) == 1
    assert len(sent_agents(recorded)) == 1
    assert model.file_content(path) == AGENT.encode("utf-8")
    assert model.compiles == 1        # the compiled core in the cache was still good
    assert [c["op"] for c in model.calls].count("batch") == 2    # one gather per session


def test_winrm_compliance_check_sends_at_most_30_kb_on_a_later_run(wire: Wire) -> None:
    """Issue 12's winrm target, for the shipped playbook's check over the lab's WS-Man wire
    (NTLM, message encryption): the later run sends the agent's hash, not the agent."""
    inventory = load_inventory([str(LAB_INVENTORY)])
    playbook = load_playbook(str(SHIPPED))
    name = sorted(inventory.hosts)[0]
    hosts = [inventory.hosts[name]]
    resolve_run_secrets(hosts, playbook)
    wire.serve(name, hosts[0].vars.get("lab"))
    counters = wire.endpoint.counters(name)
    sent = []
    for _ in range(2):
        before = counters.bytes_in
        summary = run_fleet(hosts, playbook, RunOptions(mode="check", backoff=FAST), [],
                            transport_factory=wire.factory("winrm", "ntlm", False))
        assert summary.exit_code in (0, 2)      # compliant or drifted: the check ran
        sent.append(counters.bytes_in - before)
    first, later = sent
    assert later <= 30_000, sent
    assert first - later > len(bootstrap.packed(AGENT)) * 4 // 3


# ---------------------------------------------------------------- the C# side, under mono


def _store(agent: AgentHost, folder: Path, name: str, data: bytes) -> Any:
    return agent.command(f"CACHE {folder} {name} {base64.b64encode(data).decode()}")


def test_core_stores_entries_named_by_their_hash_in_a_protected_folder(
        agent_session: SharedHost, tmp_path: Path) -> None:
    agent = agent_session.host(tmp_path)
    folder = tmp_path / "cache"
    data = AGENT.encode("utf-8")
    sha = hashlib.sha256(data).hexdigest()
    assert _store(agent, folder, f"{sha}.ps1", data) is True
    assert (folder / f"{sha}.ps1").read_bytes() == data
    assert ["ProtectDirectory", str(folder)] in agent.command("CALLS")
    # a name whose hash is not the content's is refused, nothing written
    assert _store(agent, folder, f"{'0' * 64}.ps1", data) is False
    assert _store(agent, folder, "../x.ps1", data) is False
    assert sorted(p.name for p in folder.iterdir()) == [f"{sha}.ps1"]


def test_core_keeps_one_assembly_per_source_and_a_few_agents(agent_session: SharedHost,
                                                            tmp_path: Path) -> None:
    agent = agent_session.host(tmp_path)
    folder = tmp_path / "cache"
    source = "c" * 64
    names = [agent.command(f"CACHEDLL {folder} {source} "
                           f"{base64.b64encode(b'dll %d' % i).decode()}") for i in range(3)]
    assert all(n == f"{source}-{hashlib.sha256(b'dll %d' % i).hexdigest()}.dll"
               for i, n in enumerate(names))
    assert sorted(p.name for p in folder.glob("*.dll")) == [names[-1]]
    for i in range(6):
        body = b"agent %d" % i
        assert _store(agent, folder, f"{hashlib.sha256(body).hexdigest()}.ps1", body)
    assert len(list(folder.glob("*.ps1"))) == 4     # the one just stored and Keep = 3
    assert (folder / f"{hashlib.sha256(b'agent 5').hexdigest()}.ps1").exists()


def test_an_agent_the_target_will_not_define_is_an_error_that_quotes_it(
        wire: Wire, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another version's agent on a lab host: the call fails NoAgent with what the target said,
    and the controller does not remember the target as holding it."""
    wire.serve("h1")
    other = AGENT.replace("PUSHINSTALL-KEY:", "PUSHINSTALL-KEY-X:")
    # the controller's view only: the lab keeps this version's agent
    controller_ops = types.SimpleNamespace(**vars(ops))
    controller_ops.agent_source = lambda: other
    monkeypatch.setattr(psrp, "ops", controller_ops)
    transport = PSRPTransport(wire.host("h1"))
    transport.open()
    with pytest.raises(RemoteOpFailed, match="not this version's agent") as caught:
        transport.call(GATHER)
    transport.close()
    assert caught.value.error_type == "NoAgent"
    assert not bootstrap.Seen().holds(transport._where, bootstrap.agent_hash(other))
