"""Lab hosts keep state between runs, share one object per process, reset fresh, stay
consistent under threads, and the lab transport meets their connection faults."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from kit import ask

from pushinstall import paths
from pushinstall.errors import AuthenticationFailed, InputError, Unreachable
from pushinstall.lab import LabHost, catalog, flush_all, lab_host, reset_lab
from pushinstall.lab.transport import LabTransport
from pushinstall.model import Host
from pushinstall.remote import ops


def pending(host: LabHost) -> bool:
    facts = ask(host, "facts", queries=[{"id": "p", "kind": "pending_reboot"}])
    return bool(facts["p"]["pending"])


# the lab's hosts live in the controller's state dir (`paths.state_dir`), by its rules
def test_state_dir_rules(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    where = paths.state_dir
    monkeypatch.setenv("PUSHINSTALL_STATE_DIR", str(tmp_path / "explicit"))
    assert where() == tmp_path / "explicit"
    monkeypatch.delenv("PUSHINSTALL_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert where() == tmp_path / "xdg" / "pushinstall"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert where() == Path.home() / ".local" / "state" / "pushinstall"


def test_a_second_process_sees_what_the_first_did(state_dir: Path) -> None:
    first = LabHost("db01", {"pending_reboot": True, "reboot_seconds": 0}, state_dir)
    ask(first, "set_registry", key="HKLM:\\SOFTWARE\\Contoso", name="Ran", value="yes",
        type="String")
    ask(first, "reboot")
    assert not (state_dir / "lab" / "db01.json").exists()  # write-behind: saved soon, not now
    first.flush()
    assert (state_dir / "lab" / "db01.json").is_file()
    # a new object stands for a new process: same vars, but the state file wins
    second = LabHost("db01", {"pending_reboot": True, "reboot_seconds": 0}, state_dir)
    facts = ask(second, "facts", queries=[
        {"id": "r", "kind": "registry", "key": "HKLM:\\SOFTWARE\\Contoso", "name": "Ran"}])
    assert facts["r"]["value"] == "yes"
    assert pending(second) is False
    second.flush()
    assert json.loads((state_dir / "lab" / "db01.json").read_text())["op_log"] == [
        "set_registry", "reboot", "facts", "facts"]
    assert reset_lab(state_dir, ["db01"]) == 1
    assert pending(LabHost("db01", {"pending_reboot": True}, state_dir)) is True


def test_changes_from_another_process_are_read_when_a_client_connects(
        state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = LabHost("app01", {}, state_dir)
    theirs = LabHost("app01", {}, state_dir)
    ask(theirs, "ensure_directory", path="C:\\Theirs")
    theirs.flush()
    assert mine.refuses_connect() is False
    facts = ask(mine, "facts", queries=[{"id": "d", "kind": "file", "path": "C:\\Theirs"}])
    assert facts["d"]["is_directory"] is True
    assert not list((state_dir / "lab").glob("*.tmp"))
    # a client already connected sees it once its host's last look is SYNC_SECONDS old
    ask(theirs, "ensure_directory", path="C:\\Later")
    theirs.flush()
    later = [{"id": "d", "kind": "file", "path": "C:\\Later"}]
    assert ask(mine, "facts", queries=later)["d"]["is_directory"] is False
    monkeypatch.setattr("pushinstall.lab.host.SYNC_SECONDS", 0.0)
    assert ask(mine, "facts", queries=later)["d"]["is_directory"] is True


def test_one_shared_host_per_state_dir_and_name(state_dir: Path, tmp_path: Path) -> None:
    one = lab_host("web01", {"latency_ms": 5})
    assert lab_host("web01", {"latency_ms": 7}) is one and one.latency == 0.007
    assert lab_host("web01", None, tmp_path / "elsewhere") is not one
    transport = LabTransport(Host("web01", vars={"lab": {"latency_ms": 7}}))
    assert transport.lab is one


def test_reset_all_hosts_also_resets_shared_objects(state_dir: Path) -> None:
    shared = lab_host("r1", {"pending_reboot": True, "reboot_seconds": 0})
    ask(shared, "reboot")
    ask(LabHost("r2", {}, state_dir), "reboot")
    flush_all()
    assert reset_lab(state_dir) == 2
    assert pending(shared) is True
    assert reset_lab(state_dir, ["never-existed"]) == 0


def test_cli_lab_reset(state_dir: Path) -> None:
    from click.testing import CliRunner

    from pushinstall.cli import cli

    for name in ("c1", "c2"):
        ask(LabHost(name, {}, state_dir), "ensure_directory", path="C:\\Temp")
    flush_all()
    result = CliRunner().invoke(cli, ["lab", "reset", "--host", "c1"])
    assert result.exit_code == 0 and "reset 1 lab hosts" in result.output
    assert not (state_dir / "lab" / "c1.json").exists()
    assert (state_dir / "lab" / "c2.json").exists()


def test_bad_lab_vars_are_input_errors(state_dir: Path) -> None:
    with pytest.raises(InputError, match="unknown lab var 'laytency_ms'"):
        LabHost("x", {"laytency_ms": 5}, state_dir)
    with pytest.raises(InputError, match="installer_exit_code"):
        LabHost("x", {"installer_exit_code": "3010"}, state_dir)
    with pytest.raises(InputError) as secret:
        LabHost("x", {"cs_passphrase": 12345678}, state_dir)
    assert "12345678" not in str(secret.value)
    with pytest.raises(InputError, match="os"):
        LabHost("x", {"os": "2003"}, state_dir)


def test_concurrent_calls_on_one_host_are_serialized(state_dir: Path) -> None:
    host = LabHost("busy01", {}, state_dir)
    start = host.generation

    def write(i: int) -> None:
        ask(host, "set_registry", key="HKLM:\\SOFTWARE\\Busy", name=f"v{i}", value=i,
            type="DWord")

    threads = [threading.Thread(target=write, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert host.generation == start + 20
    host.flush()
    saved = LabHost("busy01", {}, state_dir)
    values = saved.state.registry.keys["hklm\\software\\busy"]["values"]
    assert sorted(int(v["value"]) for v in values.values()) == list(range(20))


def test_a_running_installer_does_not_block_facts(state_dir: Path) -> None:
    host = LabHost("slow01", {"installer_seconds": 3}, state_dir)
    ask(host, "download", source=catalog.share_path(catalog.VM_AGENT_MSI),
        destination="C:\\Temp\\a.msi", run_as="system")
    worker = threading.Thread(target=ask, args=(host, "run_process"),
                              kwargs={"path": "msiexec.exe", "arguments": ["/i", "C:\\Temp\\a.msi",
                                                                           "/qn"]})
    worker.start()
    deadline = time.monotonic() + 30
    while "run_process" not in host.op_log:  # the installer has started
        assert time.monotonic() < deadline, "the installer never started"
        time.sleep(0.01)
    during = ask(host, "facts", queries=[{"id": "p", "kind": "product",
                                          "product_id": "{5CF4D04A-F16C-4892-9196-6025EA61F964}"}])
    assert during["p"]["installed"] is False  # answered while the installer ran, not after it
    worker.join()
    facts = ask(host, "facts", queries=[{"id": "p", "kind": "product",
                                         "product_id": "{5CF4D04A-F16C-4892-9196-6025EA61F964}"}])
    assert facts["p"]["installed"] is True


def test_transport_connection_faults() -> None:
    with pytest.raises(Unreachable, match="refused"):
        LabTransport(Host("down01", vars={"lab": {"unreachable": True}})).open()
    with pytest.raises(AuthenticationFailed) as denied:
        LabTransport(Host("auth01", vars={"lab": {"bad_credentials": True}})).open()
    assert denied.value.hint
    flaky = LabTransport(Host("flaky01", vars={"lab": {"refuse_first_connects": 2}}))
    for _ in range(2):
        with pytest.raises(Unreachable, match="reset"):
            flaky.open()
    flaky.open()
    dropping = LabTransport(Host("drop01", vars={"lab": {"drop_connection_on": ["reboot"],
                                                         "reboot_seconds": 0}}))
    dropping.open()
    with pytest.raises(Unreachable, match="reading the answer"):
        dropping.call(ops.request("reboot"))
    assert dropping.lab.op_log == ["reboot"]  # the op ran; only the answer was lost


def test_transport_latency_and_the_gather_costs_one_call() -> None:
    transport = LabTransport(Host("lat01", vars={"lab": {"latency_ms": 50}}))
    transport.open()
    started = time.monotonic()
    answer = transport.call(ops.batch([ops.request("facts", queries=[
        {"id": "os", "kind": "os"}, {"id": "d", "kind": "disk", "drive": "C:"}])]))
    assert time.monotonic() - started >= 0.05
    assert answer["ok"] and transport.lab.op_log == ["batch"] and len(transport.lab.calls) == 1


def test_catalog_hashes_are_stable_and_identify_programs() -> None:
    for name, content in catalog.files().items():
        assert catalog.sha256_of(name) == hashlib.sha256(content).hexdigest()
        assert catalog.sha256_of(catalog.url(name)) == catalog.sha256_of(catalog.share_path(name))
    bundle = catalog.identify(catalog.files()[catalog.ASR_BUNDLE])
    assert bundle == {"program": "asr-bundle", "version": catalog.ASR_VERSION}
    assert catalog.identify(b"MZ\x90\x00") is None
    with pytest.raises(KeyError):
        catalog.sha256_of("\\\\labshare\\asr\\nope.exe")


def test_counted_changes_agree_with_comparing_the_whole_state(
        state_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The generation comes from counting changes (cheap), not from comparing the whole state
    before and after each call (what it replaced): over the ASR playbook on hosts that install,
    reboot, fail, upgrade and are already done, plus a rerun and hand-made drift, both must
    say the same for every call."""
    from kit import asr_playbook, lab_fleet, run_on_lab

    original = LabHost.handle
    disagreements: list[tuple[str, Any, bool]] = []
    calls = 0

    def whole(host: LabHost) -> str:
        return json.dumps({k: v for k, v in host.state.data.items() if k != "generation"},
                          sort_keys=True)

    def compared(self: LabHost, request: dict[str, Any], checked: bool = False,
                 ) -> dict[str, Any]:
        nonlocal calls
        generation, before = self.generation, whole(self)
        answer = original(self, request, checked)
        changed = whole(self) != before
        calls += 1
        if changed != (self.generation != generation):
            disagreements.append((self.name, request.get("op"), changed))
        return answer

    monkeypatch.setattr(LabHost, "handle", compared)
    faults = {1: {"pending_reboot": True, "reboot_seconds": 0},
              2: {"installer_exit_code": 14},
              3: {"installed_version": "9.60.0.0"},
              4: {"registered_to": "10.0.0.115"},
              5: {"service_stops_after_start": ["svagents"]}}
    fleet = lab_fleet(tmp_path, 6, faults)
    playbook = asr_playbook(tmp_path)
    run_on_lab(fleet, playbook, forks=3)
    run_on_lab(fleet, playbook, forks=3)
    ask(lab_host("web000"), "set_service", name="svagents", state="stopped")
    ask(lab_host("web000"), "set_registry", key="HKLM:\\SOFTWARE\\X", name="Y", value="z",
        type="String")
    ask(lab_host("web000"), "set_registry", key="HKLM:\\SOFTWARE\\X", name="Y", value="z",
        type="String")
    run_on_lab(fleet, playbook, forks=3, mode="check")
    run_on_lab(fleet, playbook, forks=3)
    assert calls > 100 and disagreements == []


def test_a_request_line_is_decoded_once_per_process_unless_it_carries_a_secret(
        state_dir: Path) -> None:
    from pushinstall.lab import decoded as lab_module

    lab_module.DECODED.clear()
    gather = ops.invocation(ops.batch([ops.request("facts", queries=[
        {"id": "os", "kind": "os"}])]))
    one, two = LabHost("d1", {}, state_dir), LabHost("d2", {}, state_dir)
    answers = [ops.decode_answer(h.handle_line(gather)) for h in (one, two, one)]
    assert all(a["ok"] for a in answers) and len(lab_module.DECODED) == 1
    assert answers[0]["result"][0]["result"]["os"]["hostname"] == "D1"
    assert answers[1]["result"][0]["result"]["os"]["hostname"] == "D2"
    # a bad request is kept as bad: every time it answers InvalidArgument, naming the argument
    bad = ops.invocation({"op": "ensure_directory", "args": {"path": 5}})
    for _ in range(2):
        error = ops.decode_answer(one.handle_line(bad))["error"]
        assert error["type"] == "InvalidArgument" and "'path'" in error["message"]
    # a request that carries a secret is decoded for its call and not kept
    secret = ops.invocation(ops.request("write_secret", path="C:\\Temp\\p.txt",
                                        content="hunter2-passphrase"))
    assert ops.decode_answer(one.handle_line(secret))["ok"]
    share = ops.invocation(ops.request("download", source="\\\\labshare\\asr\\x.msi",
                                       destination="C:\\Temp\\x.msi",
                                       credential={"username": "u", "password": "hunter2"}))
    one.handle_line(share)
    assert len(lab_module.DECODED) == 2
    assert "hunter2" not in repr(lab_module.DECODED)


def test_the_flusher_does_not_make_a_removed_state_dir_again(tmp_path: Path) -> None:
    import shutil

    from pushinstall.lab import flusher

    root = tmp_path / "gone"
    host = LabHost("g1", {}, root)
    ask(host, "ensure_directory", path="C:\\Temp")
    shutil.rmtree(root)
    flusher.FLUSHER.flush_all(create=False)     # what the background thread does
    assert not root.exists()


def test_requests_that_may_carry_secrets_are_never_kept(state_dir: Path) -> None:
    from pushinstall.lab import decoded as lab_module

    lab_module.DECODED.clear()
    host = LabHost("k1", {}, state_dir)
    lines = [
        ops.invocation(ops.request("script", source="Write-Output 1",
                                   parameters={"Passphrase": "S3cret-passphrase"})),
        ops.invocation(ops.request("set_registry", key="HKLM:\\SOFTWARE\\X", name="K",
                                   value="S3cret-regkey", type="String")),
        ops.invocation(ops.batch([ops.request("write_secret", path="C:\\Temp\\p.txt",
                                              content="S3cret-file")])),
    ]
    for line in lines:
        host.handle_line(line)
    assert lab_module.DECODED == {}
