"""The agent's C# core, compiled as a target compiles it and run under mono: every op and fact
kind through the same encoded requests the transports send (docs/ops.md).

Windows-only calls (service control, the secret file's ACL, WNetAddConnection2, shutdown.exe,
taskkill) reach `WindowsApi`, which the test host replaces with a recorder: these tests see
each call and its arguments, tests/windows/ sees Windows do it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import socket
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from agent_host import AgentHost, SharedHost, compile_core, require_mono

from pushinstall.remote import ops, receiver


@pytest.fixture
def core(agent_session: SharedHost, tmp_path: Path) -> AgentHost:
    """The test process's agent host, reset for this test (test_a_reset_host_... proves it)."""
    return agent_session.host(tmp_path)


LEFT_KEYS = [("HKLM:\\SOFTWARE\\Left", "64"), ("HKLM:\\SOFTWARE\\Left", "32"),
             ("HKCU:\\Software\\Left", "64"), ("HKU:\\S-1-5-18\\Left", "64"),
             ("HKCR:\\.left", "64"), ("HKLM:\\", "64")]


def _what_a_test_sees(host: AgentHost, root: Path) -> dict[str, Any]:
    """What one test could see of another through the host: recorded calls, registry keys in
    every hive and view, the stand-in's settings (share code, SCCM, installer, queued tool
    exits), PowerShell's version, the drivers and task root (`root`). (The stand-in's protected
    files are named by stem, and write_secret protects its temporary file of that stem first:
    no test can see another's.)"""
    seen: dict[str, Any] = {"calls": host.command("CALLS")}
    for key, view in LEFT_KEYS:
        seen[f"{key} {view}"] = host.fact("registry", key=key, name="V", view=view)
    seen["pending"] = host.fact("pending_reboot", sccm=True)["signals"]
    seen["installer"] = host.fact("installer_running")
    seen["powershell"] = host.fact("os")["powershell_version"]
    seen["task root"] = host.fact("file", path="left-here", hash=False)["exists"]
    seen["share"] = host.answer(ops.request("download", source="\\\\srv\\s\\x",
                                            destination=str(root / "x"),
                                            credential={"username": "u", "password": "p"})
                                )["error"]["type"]
    seen["tool exit"] = host.answer(ops.request("reboot"))["ok"]
    seen["calls after"] = host.command("CALLS")
    return seen


def _leave_traces(host: AgentHost, root: Path) -> None:
    """A test that changes everything `_what_a_test_sees` looks at."""
    for key, view in LEFT_KEYS:
        host.call("set_registry", key=key, name="V", value=view, type="String", view=view)
    (root / "drivers").mkdir(exist_ok=True)
    (root / "drivers" / "InDskFlt.sys").write_bytes(b"MZ")
    (root / "left-here").write_text("x")
    for command in ("SHARE 1326", "SCCM 1", "INSTALLER 1 msiexec", "PSVERSION 3.0",
                    "TOOLEXIT 5 5 5"):
        host.command(command)
    host.fact("installer_running")            # a recorded call (NamedMutexExists) left unread


def test_a_reset_host_shows_a_test_nothing_of_the_one_before(agent_session: SharedHost,
                                                            tmp_path: Path) -> None:
    """The `core` fixture hands every test one process reset: what a test then sees is what
    a new process shows, and all of it differs where a test before left traces."""
    fresh = AgentHost(tmp_path / "fresh")
    try:
        new = _what_a_test_sees(fresh, tmp_path / "fresh")
    finally:
        fresh.close()
    (tmp_path / "dirty").mkdir()
    host = agent_session.host(tmp_path / "dirty")
    _leave_traces(host, tmp_path / "dirty")
    dirty = _what_a_test_sees(host, tmp_path / "dirty")
    assert [name for name in new if dirty[name] == new[name]] == []    # the check can fail
    (tmp_path / "next").mkdir()
    _leave_traces(host, tmp_path / "dirty")
    assert agent_session.host(tmp_path / "next") is host               # the same process
    assert _what_a_test_sees(host, tmp_path / "next") == new


def test_a_host_left_out_of_step_is_started_again(agent_session: SharedHost,
                                                  tmp_path: Path) -> None:
    """A test that sent a line without reading its answer (or killed mono) leaves the next
    test a new process, not the stale answer."""
    host = agent_session.host(tmp_path)
    assert host.process.stdin is not None
    host.process.stdin.write(b"OPS\n")
    host.process.stdin.flush()
    again = agent_session.host(tmp_path)
    assert again is not host and host.process.poll() is not None
    assert sorted(again.command("OPS")) == sorted(ops.OP_NAMES)
    again.process.kill()
    again.process.wait()
    assert sorted(agent_session.host(tmp_path).command("KINDS")) == sorted(ops.FACT_KINDS)


def test_core_compiles_alone_as_csharp_5_with_warnings_as_errors(tmp_path: Path) -> None:
    require_mono()
    assembly, seconds = compile_core(tmp_path, with_host=False)
    assert assembly.stat().st_size > 20_000
    assert seconds < 60


def test_core_answers_exactly_the_op_names_and_fact_kinds(core: AgentHost) -> None:
    assert sorted(core.command("OPS")) == sorted(ops.OP_NAMES)
    assert sorted(core.command("KINDS")) == sorted(ops.FACT_KINDS)
    assert core.answer({"op": "format_disk", "args": {}})["error"]["type"] == "UnknownOp"


def test_bad_requests_answer_invalid_argument(core: AgentHost) -> None:
    assert core.line("not base64!")["error"]["type"] == "InvalidArgument"
    assert core.line(base64.b64encode(b"[1,2]").decode())["error"]["type"] == "InvalidArgument"
    assert core.answer({"op": "facts", "args": {"queries": "x"}})["error"]["type"] == \
        "InvalidArgument"
    assert core.answer({"op": "ensure_directory", "args": {"path": 5}})["error"]["type"] == \
        "InvalidArgument"


def test_a_packed_request_is_read_like_a_plain_one(core: AgentHost, tmp_path: Path) -> None:
    """encode_request(pack=True) gzips a request of some size (issue 12); the core unpacks."""
    queries = [{"id": f"d{i}", "kind": "file", "path": str(tmp_path / f"nä{i}")}
               for i in range(12)]
    req = ops.batch([ops.request("facts", queries=queries)])
    packed = ops.encode_request(req, pack=True)
    assert base64.b64decode(packed)[:2] == b"\x1f\x8b"
    assert len(packed) < len(ops.encode_request(req))
    assert core.line(packed) == core.line(ops.encode_request(req))
    broken = base64.b64encode(b"\x1f\x8b" + b"not gzip at all").decode()
    assert core.line(broken)["error"]["type"] == "InvalidArgument"


# ---------------------------------------------------------------- JSON and batch


def test_non_ascii_round_trips(core: AgentHost, tmp_path: Path) -> None:
    path = tmp_path / "Überprüfung 名前"
    assert core.call("ensure_directory", path=str(path)) == {"changed": True}
    assert path.is_dir()
    fact = core.fact("file", path=str(path))
    assert fact["exists"] and fact["is_directory"]
    missing = core.answer(ops.request("remove_file", path=str(path)))
    assert missing["error"]["type"] == "InvalidArgument"
    assert "名前" in missing["error"]["message"]


def test_two_megabyte_payload(core: AgentHost, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024)
    digest = hashlib.sha256(data).hexdigest()
    dest = tmp_path / "big.bin"
    temp = core.call("file_begin", destination=str(dest), size=len(data), sha256=digest)
    temp_path = temp["temp_path"]
    assert temp_path.endswith(".pushinstall-part")
    size = core.call("file_chunk", temp_path=temp_path, offset=0,
                     data=base64.b64encode(data).decode())
    assert size == {"size": len(data)}
    assert core.call("file_end", temp_path=temp_path, destination=str(dest), sha256=digest) == \
        {"changed": True, "sha256": digest, "size": len(data)}
    assert dest.read_bytes() == data


def test_batch_answers_in_order_with_errors_per_item(core: AgentHost, tmp_path: Path) -> None:
    answers = core.call("batch", requests=[
        ops.request("ensure_directory", path=str(tmp_path / "a")),
        ops.request("nope"),
        ops.request("remove_file", path=str(tmp_path / "missing")),
        {"op": "remove_file", "args": {}},
    ])
    assert [a["ok"] for a in answers] == [True, False, True, False]
    assert answers[0]["result"] == {"changed": True}
    assert answers[1]["error"]["type"] == "UnknownOp"
    assert answers[2]["result"] == {"removed": False}
    assert answers[3]["error"] == {"type": "InvalidArgument",
                                   "message": "missing argument 'path'"}


def test_regression_nested_array_facts_sees_every_query(core: AgentHost) -> None:
    """agent.ps1 wrapped `,$OpArgs[$Name]` in @(): facts saw ONE query (an object[]) and
    answered InvalidArgument; a batch of two answered one error."""
    result = core.call("facts", queries=[
        {"id": "one", "kind": "disk", "drive": "C:"},
        {"id": "two", "kind": "registry", "key": "HKLM:\\SOFTWARE\\Nope"},
    ])
    assert sorted(result) == ["one", "two"]
    assert result["two"] == {"key_exists": False, "exists": False, "value": None, "type": None}
    answers = core.call("batch", requests=[ops.request("facts", queries=[]),
                                           ops.request("facts", queries=[])])
    assert answers == [{"ok": True, "result": {}}, {"ok": True, "result": {}}]


def test_fact_query_error_stays_with_its_id(core: AgentHost) -> None:
    result = core.call("facts", queries=[
        {"id": "bad", "kind": "registry", "key": "HKXX:\\x"},
        {"id": "kind", "kind": "bios"},
        {"id": "ok", "kind": "disk", "drive": "C"},
    ])
    assert result["bad"]["error"]["type"] == "InvalidArgument"
    assert result["kind"]["error"]["type"] == "InvalidArgument"
    assert result["ok"]["exists"] is True


# ---------------------------------------------------------------- files


def test_file_push_with_wrong_hash_is_refused_and_cleaned(core: AgentHost,
                                                           tmp_path: Path) -> None:
    dest = tmp_path / "x.bin"
    temp = core.call("file_begin", destination=str(dest), size=3, sha256="0" * 64)["temp_path"]
    core.call("file_chunk", temp_path=temp, offset=0, data=base64.b64encode(b"abc").decode())
    answer = core.answer(ops.request("file_end", temp_path=temp, destination=str(dest),
                                     sha256="0" * 64))
    assert answer["error"]["type"] == "HashMismatch"
    assert not Path(temp).exists() and not dest.exists()
    assert core.answer(ops.request("file_chunk", temp_path=str(dest), offset=0,
                                   data=""))["error"]["type"] == "InvalidArgument"
    assert core.answer(ops.request("file_chunk", temp_path=temp, offset=0,
                                   data=""))["error"]["type"] == "NotFound"


def test_push_stream_writes_raw_bytes_and_a_corrupted_one_fails_the_hash(
        core: AgentHost, tmp_path: Path) -> None:
    """The receiver's half in the core (receiver.ps1 hands it stdin): a request line, then
    raw bytes, written at the offset; file_end still checks the sha256 of what arrived."""
    data = os.urandom(3 * 1024 * 1024 + 7)
    digest = hashlib.sha256(data).hexdigest()
    dest = tmp_path / "streamed.bin"
    temp = core.call("file_begin", destination=str(dest), size=len(data), sha256=digest)[
        "temp_path"]
    stream = tmp_path / "stdin.bin"
    stream.write_bytes(receiver.header(temp, 0, len(data)) + data + b"ignored tail")
    assert core.command(f"RECEIVE {stream}") == {"ok": True, "result": {"size": len(data)}}
    assert core.call("file_end", temp_path=temp, destination=str(dest), sha256=digest) == \
        {"changed": True, "sha256": digest, "size": len(data)}
    assert dest.read_bytes() == data

    temp = core.call("file_begin", destination=str(dest), size=4, sha256=digest)["temp_path"]
    stream.write_bytes(receiver.header(temp, 0, 4) + b"\x00bad")  # one byte flipped in transit
    assert core.command(f"RECEIVE {stream}")["ok"]
    failed = core.answer(ops.request("file_end", temp_path=temp, destination=str(dest),
                                     sha256=hashlib.sha256(b"xbad").hexdigest()))
    assert failed["error"]["type"] == "HashMismatch"
    assert not Path(temp).exists() and dest.read_bytes() == data


def test_push_stream_refuses_a_short_stream_and_foreign_requests(core: AgentHost,
                                                                tmp_path: Path) -> None:
    dest = tmp_path / "x.bin"
    temp = core.call("file_begin", destination=str(dest), size=10, sha256="0" * 64)["temp_path"]
    stream = tmp_path / "stdin.bin"
    stream.write_bytes(receiver.header(temp, 0, 10) + b"12345")
    short = core.command(f"RECEIVE {stream}")["error"]
    assert short == {"type": "InvalidArgument",
                     "message": "the push stream ended after 5 of 10 bytes"}
    stream.write_bytes(receiver.header(str(dest), 0, 1) + b"x")
    assert core.command(f"RECEIVE {stream}")["error"]["type"] == "InvalidArgument"
    stream.write_bytes(ops.encode_request(ops.request("remove_file", path=temp)).encode()
                       + b"\n")
    assert core.command(f"RECEIVE {stream}")["error"]["message"] == \
        "the push stream carries one file_chunk request"
    assert Path(temp).exists()
    stream.write_bytes(b"no newline at all")
    assert core.command(f"RECEIVE {stream}")["error"]["type"] == "InvalidArgument"


def test_same_content_is_unchanged(core: AgentHost, tmp_path: Path) -> None:
    dest = tmp_path / "x.bin"
    dest.write_bytes(b"abc")
    digest = hashlib.sha256(b"abc").hexdigest()
    temp = core.call("file_begin", destination=str(dest), size=3, sha256=digest)["temp_path"]
    core.call("file_chunk", temp_path=temp, offset=0, data=base64.b64encode(b"abc").decode())
    assert core.call("file_end", temp_path=temp, destination=str(dest), sha256=digest)[
        "changed"] is False
    assert not Path(temp).exists()
    fact = core.fact("file", path=str(dest))
    assert (fact["size"], fact["sha256"], fact["is_directory"]) == (3, digest, False)
    assert core.fact("file", path=str(dest), hash=False)["sha256"] is None
    assert core.fact("file", path=str(tmp_path / "no"))["exists"] is False


def test_ensure_directory_and_remove_file(core: AgentHost, tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b" / "c"
    assert core.call("ensure_directory", path=str(deep)) == {"changed": True}
    assert core.call("ensure_directory", path=str(deep)) == {"changed": False}
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert core.answer(ops.request("ensure_directory", path=str(blocker)))["error"]["type"] == \
        "InvalidArgument"
    blocker.chmod(0o444)
    assert core.call("remove_file", path=str(blocker)) == {"removed": True}
    assert core.call("remove_file", path=str(blocker)) == {"removed": False}


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_expand_archive_nested_and_idempotent(core: AgentHost, tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    archive.write_bytes(_zip({"top.txt": b"1", "sub/dir/deep.txt": "ü".encode(), "empty/": b""}))
    dest = tmp_path / "out"
    assert core.call("expand_archive", path=str(archive), destination=str(dest)) == \
        {"changed": True, "files": 2}
    assert (dest / "sub" / "dir" / "deep.txt").read_text() == "ü"
    assert (dest / "empty").is_dir()
    assert core.call("expand_archive", path=str(archive), destination=str(dest)) == \
        {"changed": False, "files": 0}


def test_expand_archive_refuses_path_traversal(core: AgentHost, tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    archive.write_bytes(_zip({"ok.txt": b"1", "../escaped.txt": b"x"}))
    answer = core.answer(ops.request("expand_archive", path=str(archive),
                                     destination=str(tmp_path / "out")))
    assert answer["error"]["type"] == "InvalidArgument"
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "out" / "ok.txt").exists()
    assert core.answer(ops.request("expand_archive", path=str(tmp_path / "none.zip"),
                                   destination=str(tmp_path)))["error"]["type"] == "NotFound"


def test_write_secret_sets_the_acl_before_the_content(core: AgentHost, tmp_path: Path) -> None:
    path = tmp_path / "passphrase.txt"
    assert core.call("write_secret", path=str(path), content="s3cr3t-ü") == {"changed": True}
    assert path.read_bytes() == "s3cr3t-ü".encode()          # UTF-8, no byte order mark
    assert core.command("CALLS") == [["ProtectSecretFile", "passphrase"]]
    assert core.call("write_secret", path=str(path), content="s3cr3t-ü") == {"changed": False}
    answer = core.answer(ops.request("write_secret", path=str(path), content="other"))
    assert answer == {"ok": True, "result": {"changed": True}}
    assert "other" not in json.dumps(core.command("CALLS"))
    assert core.call("remove_file", path=str(path)) == {"removed": True}


# ---------------------------------------------------------------- download


def test_download_local_and_http(core: AgentHost, tmp_path: Path) -> None:
    import http.server
    import threading

    source = tmp_path / "src.bin"
    source.write_bytes(b"payload")
    digest = hashlib.sha256(b"payload").hexdigest()
    dest = tmp_path / "dl" / "x.bin"
    assert core.call("download", source=str(source), destination=str(dest), sha256=digest) == \
        {"changed": True, "sha256": digest, "size": 7}
    assert core.call("download", source=str(source), destination=str(dest), sha256=digest)[
        "changed"] is False
    bad = core.answer(ops.request("download", source=str(source),
                                  destination=str(tmp_path / "y"), sha256="1" * 64))
    assert bad["error"]["type"] == "HashMismatch"

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        got = core.call("download", source=f"{url}/src.bin?sig=SECRET",
                        destination=str(tmp_path / "h.bin"))
        assert got["sha256"] == digest
        missing = core.answer(ops.request("download", source=f"{url}/none?sig=SECRET",
                                          destination=str(tmp_path / "n.bin")))
        assert missing["error"]["type"] == "DownloadFailed"
        assert "404" in missing["error"]["message"] and "SECRET" not in missing["error"]["message"]
    finally:
        server.shutdown()


def test_download_share_credential_goes_to_the_api(core: AgentHost, tmp_path: Path) -> None:
    credential = {"username": "LAB\\svc", "password": "hunter2"}
    core.command("SHARE 1326")
    answer = core.answer(ops.request("download", source="\\\\srv\\share\\x.msi",
                                     destination=str(tmp_path / "x.msi"), credential=credential))
    assert answer["error"]["type"] == "AccessDenied"
    assert "hunter2" not in answer["error"]["message"]
    assert core.command("CALLS") == [["ConnectShare", "\\\\srv\\share", "LAB\\svc", "hunter2"]]


def _system_calls(calls: list[Any]) -> dict[str, list[Any]]:
    """The Task Scheduler calls of one run_as: system download, by method name."""
    return {call[0]: call[1:] for call in calls if call[0] != "ConnectShare"}


def _task_leftovers(root: Path) -> list[str]:
    return [p.name for p in root.iterdir() if p.name.startswith("pushinstall-download-")]


def test_download_as_system_runs_a_one_shot_task(core: AgentHost, tmp_path: Path) -> None:
    """The copy runs in a SYSTEM task whose worker is this core compiled again (under mono the
    stand-in Task Scheduler runs it as a child process); its only input is the data file."""
    share = "\\\\srv\\share\\ua.bin"
    (tmp_path / share).write_bytes(b"bundle \xff")      # a UNC path is a file name here
    digest = hashlib.sha256(b"bundle \xff").hexdigest()
    dest = tmp_path / "dl" / "ua.bin"
    got = core.call("download", source=share, destination=str(dest), sha256=digest,
                    run_as="system", timeout_s=120)
    assert got == {"changed": True, "sha256": digest, "size": 8}
    assert dest.read_bytes() == b"bundle \xff"
    calls = _system_calls(core.command("CALLS"))
    assert list(calls) == ["CreateProtectedDirectory", "RegisterSystemTask", "RunTask",
                           "DeleteTask"]
    directory = calls["CreateProtectedDirectory"][0]
    name, worker, workdir, limit = calls["RegisterSystemTask"]
    assert Path(directory).name == name and name.startswith("pushinstall-download-")
    assert worker == str(Path(directory) / "pushinstall-task.exe") and workdir == directory
    assert limit == 180                                   # timeout_s + 60: the scheduler's own stop
    data = calls["RunTask"][1]
    assert data["source"] == share and data["credential"] is None and data["timeout_s"] == 120
    assert data["temp"].startswith(str(dest) + ".")
    assert calls["DeleteTask"] == [name]
    assert _task_leftovers(tmp_path) == [] and sorted(p.name for p in dest.parent.iterdir()) == \
        ["ua.bin"]
    again = core.call("download", source=share, destination=str(dest), sha256=digest,
                      run_as="system")
    assert again["changed"] is False and core.command("CALLS") == []


def test_download_as_system_passes_the_credential_as_data_only(core: AgentHost,
                                                               tmp_path: Path) -> None:
    credential = {"username": "LAB\\svc", "password": "hunter2"}
    answer = core.answer(ops.request("download", source="\\\\srv\\share\\x.msi",
                                     destination=str(tmp_path / "x.msi"), credential=credential,
                                     run_as="system"))
    # the worker connects the share with the real WindowsApi: mpr.dll is Windows only
    assert not answer["ok"] and "hunter2" not in json.dumps(answer)
    calls = _system_calls(core.command("CALLS"))
    assert calls["RunTask"][1]["credential"] == credential
    assert "hunter2" not in json.dumps(calls["RegisterSystemTask"])   # nor its command line
    assert calls["DeleteTask"] == [calls["RegisterSystemTask"][0]]
    assert _task_leftovers(tmp_path) == []


def test_download_as_system_refused_names_the_machine_account(core: AgentHost,
                                                              tmp_path: Path) -> None:
    (tmp_path / "\\\\srv\\share\\denied.msi").mkdir()   # reading a directory is access denied
    answer = core.answer(ops.request("download", source="\\\\srv\\share\\denied.msi",
                                     destination=str(tmp_path / "d.msi"), run_as="system"))
    assert answer["error"]["type"] == "AccessDenied"
    assert answer["error"]["message"].endswith(f"(as {socket.gethostname()}$)")
    assert _task_leftovers(tmp_path) == [] and not (tmp_path / "d.msi").exists()


def test_download_as_system_timeout_stops_and_deletes_the_task(core: AgentHost,
                                                               tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "\\\\srv\\share\\slow.msi")    # opening it blocks: a copy that hangs
    # (1 s: the copy never ends, so any deadline proves the stop; the clock starts at RunTask)
    answer = core.answer(ops.request("download", source="\\\\srv\\share\\slow.msi",
                                     destination=str(tmp_path / "s.msi"), run_as="system",
                                     timeout_s=1))
    assert answer["error"]["type"] == "Timeout"
    calls = _system_calls(core.command("CALLS"))
    name = calls["RegisterSystemTask"][0]
    assert calls["StopTask"] == [name] and calls["DeleteTask"] == [name]
    assert _task_leftovers(tmp_path) == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("s.msi")] == []


def test_download_run_as_is_checked_and_ignored_off_shares(core: AgentHost,
                                                           tmp_path: Path) -> None:
    source = tmp_path / "local.bin"
    source.write_bytes(b"x")
    got = core.call("download", source=str(source), destination=str(tmp_path / "l"),
                    run_as="system")
    assert got["changed"] is True and core.command("CALLS") == []
    bad = core.answer({"op": "download", "args": {"source": str(source), "destination": "d",
                                                  "run_as": "root"}})
    assert bad["error"]["type"] == "InvalidArgument" and "run_as" in bad["error"]["message"]


# ---------------------------------------------------------------- run_process


CHILD = """
import json, os, subprocess, sys, time
mode = sys.argv[1]
if mode == "argv":
    print(json.dumps(sys.argv[2:]))
elif mode == "talk":
    for i in range(50):
        print(f"line {i} \u00fc\u540d")
    print("oops \u00e9", file=sys.stderr)
    sys.exit(int(sys.argv[2]))
elif mode == "log":
    with open(sys.argv[2], "w", encoding="utf-8", newline="\\r\\n") as log:
        for i in range(int(sys.argv[3])):
            log.write(f"log {i} \u00fc " + "x" * 100 + "\\n")
elif mode == "tree":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    open(sys.argv[2], "w").write(str(child.pid))
    time.sleep(120)
"""


@pytest.fixture
def child(tmp_path: Path) -> Path:
    script = tmp_path / "child.py"
    script.write_text(CHILD, encoding="utf-8")
    return script


def test_regression_argument_list_arrives_as_separate_entries(core: AgentHost,
                                                              child: Path) -> None:
    """agent.ps1 cast the list with [string]: one argv entry "a b c"."""
    # (mono splits a command line by its own rules: backslash cases are in the next test)
    arguments = ["plain", "with space", 'quo"te', "", "名前"]
    result = core.call("run_process", path=sys.executable,
                       arguments=[str(child), "argv", *arguments])
    assert json.loads(result["stdout_tail"][0]) == arguments
    assert result["exit_code"] == 0 and result["timed_out"] is False
    assert result["command_line"] == ops.windows_command_line(
        sys.executable, [str(child), "argv", *arguments])


@pytest.mark.parametrize("arguments", [
    ["a b", "c"], ['he said "hi"'], ["C:\\dir\\"], ["C:\\dir with space\\"], ["a\\\\b", "\\\"x"],
    [""], ["tab\there", "new\nline", "v\vt"], ["/PassphraseFilePath", "C:\\Temp\\p w.txt"],
])
def test_argv_join_equals_python_twin(core: AgentHost, arguments: list[str]) -> None:
    joined = core.quote(arguments)
    assert joined == ops.windows_argv_quote(arguments)
    assert ops.windows_argv_split(joined) == arguments


def test_regression_child_output_is_utf8_with_tails(core: AgentHost, child: Path) -> None:
    """Child output was decoded with the OEM code page: non-ASCII installer lines broke."""
    result = core.call("run_process", path=sys.executable, arguments=[str(child), "talk", "62"],
                       tail_lines=3)
    assert result["exit_code"] == 62
    assert result["stdout_tail"] == [f"line {i} ü名" for i in (47, 48, 49)]
    assert result["stderr_tail"] == ["oops é"]
    assert result["duration_s"] >= 0


def test_log_path_adds_the_log_tail(core: AgentHost, child: Path, tmp_path: Path) -> None:
    log = tmp_path / "UA_install.log"
    result = core.call("run_process", path=sys.executable,
                       arguments=[str(child), "log", str(log), "120"], log_path=str(log))
    assert result["log_tail"] == [f"log {i} ü " + "x" * 100 for i in range(70, 120)]
    assert "log_tail" not in core.call("run_process", path=sys.executable,
                                       arguments=[str(child), "argv"])
    missing = core.call("run_process", path=sys.executable, arguments=[str(child), "argv"],
                        log_path=str(tmp_path / "none.log"))
    assert missing["log_tail"] == []


def test_log_tail_of_a_log_larger_than_a_mebibyte(core: AgentHost, child: Path,
                                                  tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    result = core.call("run_process", path=sys.executable,
                       arguments=[str(child), "log", str(log), "30000"], log_path=str(log))
    assert log.stat().st_size > 3 * 1024 * 1024
    assert result["log_tail"] == [f"log {i} ü " + "x" * 100 for i in range(29950, 30000)]


def test_timeout_kills_the_process_tree(core: AgentHost, child: Path, tmp_path: Path) -> None:
    marker = tmp_path / "grandchild.pid"
    started = time.monotonic()
    result = core.call("run_process", path=sys.executable,
                       arguments=[str(child), "tree", str(marker)], timeout_s=2)
    assert result["timed_out"] is True
    assert time.monotonic() - started < 30
    assert core.command("CALLS") == [["KillProcessTree"]]
    grandchild = int(marker.read_text())
    for _ in range(50):
        if not Path(f"/proc/{grandchild}").exists() or \
                Path(f"/proc/{grandchild}/stat").read_text().split()[2] == "Z":
            break
        time.sleep(0.1)
    else:
        pytest.fail("the grandchild outlived the timeout")


def test_missing_executable_or_directory_is_not_found(core: AgentHost, tmp_path: Path) -> None:
    assert core.answer(ops.request("run_process", path=str(tmp_path / "none.exe")))["error"][
        "type"] == "NotFound"
    assert core.answer(ops.request("run_process", path=sys.executable,
                                   working_directory=str(tmp_path / "no")))["error"]["type"] == \
        "NotFound"


# ---------------------------------------------------------------- registry and products


KEY = "HKLM:\\SOFTWARE\\PushinstallTest"


@pytest.mark.parametrize(("kind", "value"), [
    ("String", "tëxt"), ("ExpandString", "%SystemRoot%\\x"), ("DWord", 4294967295),
    ("QWord", 18446744073709551615), ("MultiString", ["a", "ü"]),
    ("Binary", base64.b64encode(b"\x00\x01\xff").decode()),
])
def test_set_registry_and_read_back(core: AgentHost, kind: str, value: Any) -> None:
    assert core.call("set_registry", key=KEY, name="V", value=value, type=kind) == \
        {"changed": True}
    assert core.call("set_registry", key=KEY, name="V", value=value, type=kind) == \
        {"changed": False}
    assert core.fact("registry", key=KEY, name="V") == \
        {"key_exists": True, "exists": True, "value": value, "type": kind}


def test_registry_views_are_separate(core: AgentHost) -> None:
    core.call("set_registry", key=KEY, name="Where", value="64", type="String")
    core.call("set_registry", key=KEY, name="Where", value="32", type="String", view="32")
    assert core.fact("registry", key=KEY, name="Where")["value"] == "64"
    assert core.fact("registry", key=KEY, name="Where", view="32")["value"] == "32"
    assert core.fact("registry", key="HKLM:\\SOFTWARE\\WOW6432Node\\PushinstallTest",
                     name="Where")["value"] == "32"
    assert core.fact("registry", key=KEY, name="none") == \
        {"key_exists": True, "exists": False, "value": None, "type": None}
    bad = core.answer(ops.request("set_registry", key=KEY, name="D", value=-1, type="DWord"))
    assert bad["error"]["type"] == "InvalidArgument"


UNINSTALL = "HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall"


def test_product_by_id_and_by_name_in_both_views(core: AgentHost) -> None:
    core.call("set_registry", key=UNINSTALL + "\\{AAAA-1}", name="DisplayName",
              value="Microsoft Azure Site Recovery Mobility Service/Master Target Server",
              type="String", view="32")
    core.call("set_registry", key=UNINSTALL + "\\{AAAA-1}", name="DisplayVersion",
              value="9.60.1.0", type="String", view="32")
    core.call("set_registry", key=UNINSTALL + "\\WindowsAzureVmAgent", name="DisplayName",
              value="Windows Azure VM Agent - 2.7", type="String")
    by_id = core.fact("product", product_id="{aaaa-1}")
    by_id["product_id"] = by_id["product_id"].upper()     # mono's registry lowers key names
    assert by_id == {"installed": True, "product_id": "{AAAA-1}", "view": "32",
                     "name": "Microsoft Azure Site Recovery Mobility Service/Master Target "
                     "Server", "version": "9.60.1.0", "install_location": None}
    assert core.fact("product", name="windows azure vm agent - 2.7")["view"] == "64"
    assert core.fact("product", name="nothing")["installed"] is False


# ---------------------------------------------------------------- pending reboot


SESSION = "HKLM:\\SYSTEM\\CurrentControlSet\\Control\\Session Manager"


def test_pending_reboot_signals_by_name(core: AgentHost, tmp_path: Path) -> None:
    clean = core.fact("pending_reboot")
    assert clean["pending"] is False and set(clean["signals"]) == set(ops.PENDING_SIGNALS)
    seeds = [
        ("pending_file_rename", ops.request("set_registry", key=SESSION,
         name="PendingFileRenameOperations", value=["\\??\\C:\\x", ""], type="MultiString")),
        ("pending_file_rename2", ops.request("set_registry", key=SESSION,
         name="PendingFileRenameOperations2", value=["\\??\\C:\\y"], type="MultiString")),
        ("component_based_servicing", ops.request("set_registry", key="HKLM:\\SOFTWARE\\"
         "Microsoft\\Windows\\CurrentVersion\\Component Based Servicing\\RebootPending",
         name="x", value=1, type="DWord")),
        ("windows_update", ops.request("set_registry", key="HKLM:\\SOFTWARE\\Microsoft\\"
         "Windows\\CurrentVersion\\WindowsUpdate\\Auto Update\\RebootRequired", name="x",
         value=1, type="DWord")),
        ("update_exe_volatile", ops.request("set_registry", key="HKLM:\\SOFTWARE\\Microsoft\\"
         "Updates", name="UpdateExeVolatile", value=1, type="DWord")),
        ("domain_join", ops.request("set_registry", key="HKLM:\\SYSTEM\\CurrentControlSet\\"
         "Services\\Netlogon", name="JoinDomain", value="lab.local", type="String")),
    ]
    for signal, seed in seeds:
        core.call("batch", requests=[seed])
        fact = core.fact("pending_reboot")
        assert fact["pending"] is True and fact["signals"][signal] is True, signal
    names = "HKLM:\\SYSTEM\\CurrentControlSet\\Control\\ComputerName"
    core.call("set_registry", key=names + "\\ActiveComputerName", name="ComputerName",
              value="OLD", type="String")
    core.call("set_registry", key=names + "\\ComputerName", name="ComputerName",
              value="NEW", type="String")
    assert core.fact("pending_reboot")["signals"]["computer_rename"] is True


def test_asr_driver_without_its_service_key(core: AgentHost, tmp_path: Path) -> None:
    """The ASR installer's exit 62: a filter driver left on disk by an uninstall."""
    drivers = tmp_path / "drivers"
    drivers.mkdir()
    (drivers / "InDskFlt.sys").write_bytes(b"MZ")
    assert core.fact("pending_reboot")["signals"]["asr_driver_uninstalled"] is True
    core.call("set_registry", key="HKLM:\\SYSTEM\\CurrentControlSet\\Services\\InDskFlt",
              name="Start", value=0, type="DWord")
    assert core.fact("pending_reboot")["signals"]["asr_driver_uninstalled"] is False


def test_sccm_signal_is_opt_in(core: AgentHost) -> None:
    assert "sccm_client" not in core.fact("pending_reboot")["signals"]
    assert core.command("CALLS") == []
    core.command("SCCM 1")
    fact = core.fact("pending_reboot", sccm=True)
    assert fact["signals"]["sccm_client"] is True and fact["pending"] is True


# ---------------------------------------------------------------- ini, installer, winrm quota

DRSCOUT = ("\ufeff[vxagent]\r\nHostname = wrong\r\n"
           "[ VxAgent.Transport ]\r\n  hostname =  cs01.contoso.local  \r\nPort=443\n"
           "no equals sign\n[other]\nhostname=other\n")


def test_ini_reads_a_key_of_a_section(core: AgentHost, tmp_path: Path) -> None:
    path = tmp_path / "drscout.conf"
    path.write_bytes(DRSCOUT.encode("utf-8"))
    assert core.fact("ini", path=str(path), section="vxagent.transport", key="HOSTNAME") == \
        {"exists": True, "found": True, "value": "cs01.contoso.local"}
    assert core.fact("ini", path=str(path), section="vxagent", key="hostname")["value"] == \
        "wrong"
    assert core.fact("ini", path=str(path), section="vxagent.transport", key="Missing") == \
        {"exists": True, "found": False, "value": None}
    assert core.fact("ini", path=str(path), section="nosuch", key="Port") == \
        {"exists": True, "found": False, "value": None}
    assert core.fact("ini", path=str(tmp_path / "none.conf"), section="a", key="b") == \
        {"exists": False, "found": False, "value": None}
    assert core.fact("ini", path=str(tmp_path), section="a", key="b")["exists"] is False


def test_ini_bad_utf8_and_equals_in_the_value(core: AgentHost, tmp_path: Path) -> None:
    path = tmp_path / "x.ini"
    path.write_bytes(b"[s]\nbad\xff=x\nk = a=b \n")
    assert core.fact("ini", path=str(path), section="S", key="k")["value"] == "a=b"
    assert core.fact("ini", path=str(path), section="s", key="bad\ufffd")["value"] == "x"
    # a file the installer holds open for writing is still read
    with path.open("ab") as held:
        held.write(b"j=1\n")
        held.flush()
        assert core.fact("ini", path=str(path), section="s", key="j")["value"] == "1"


def test_ini_query_needs_its_arguments(core: AgentHost) -> None:
    fact = core.fact("ini", path="x", section="s")
    assert fact["error"] == {"type": "InvalidArgument", "message": "missing argument 'key'"}


def test_installer_running_by_mutex_or_process(core: AgentHost) -> None:
    assert core.fact("installer_running") == {"running": False, "processes": []}
    assert core.command("CALLS") == [["NamedMutexExists", "Global\\_MSIExecute"]]
    core.command("INSTALLER 1 svchost")
    assert core.fact("installer_running") == {"running": True, "processes": []}
    core.command("INSTALLER 0 svchost MSIEXEC msiexec unifiedagent.exe notepad")
    assert core.fact("installer_running") == \
        {"running": True, "processes": ["msiexec.exe", "UnifiedAgent.exe"]}


WSMAN = "HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\WSMAN"
PACKAGES = ("HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\"
            "Component Based Servicing\\Packages")
PLUGIN_XML = ('<PlugInConfiguration xmlns="http://schemas.microsoft.com/wbem/wsman/1/config/'
              'PluginConfiguration" Name="microsoft.powershell"><Resources><Resource>'
              '<Quotas MaxIdleTimeoutms="43200000" MaxMemoryPerShellMB="{mb}" '
              'MaxShells="25"/></Resource></Resources></PlugInConfiguration>')


def test_winrm_quota_from_the_registry(core: AgentHost) -> None:
    core.command("PSVERSION 3.0")
    assert core.fact("winrm_quota") == \
        {"max_memory_per_shell_mb": None, "hotfix_kb2842230": False}
    core.call("set_registry", key=WSMAN + "\\Shell", name="MaxMemoryPerShellMB", value=1024,
              type="DWord")
    assert core.fact("winrm_quota")["max_memory_per_shell_mb"] == 1024
    core.call("set_registry", key=WSMAN + "\\Plugin\\microsoft.powershell", name="ConfigXML",
              value=PLUGIN_XML.format(mb=150), type="String")
    assert core.fact("winrm_quota")["max_memory_per_shell_mb"] == 150     # the smaller bites
    core.call("set_registry", key=WSMAN + "\\Shell", name="MaxMemoryPerShellMB",
              value="4096", type="String")
    core.call("set_registry", key=WSMAN + "\\Plugin\\microsoft.powershell", name="ConfigXML",
              value=PLUGIN_XML.format(mb=2048), type="String")
    assert core.fact("winrm_quota")["max_memory_per_shell_mb"] == 2048
    package = PACKAGES + "\\Package_for_KB2842230~31bf3856ad364e35~amd64~~6.2.1.0"
    core.call("set_registry", key=package, name="CurrentState", value=112, type="DWord")
    assert core.fact("winrm_quota") == \
        {"max_memory_per_shell_mb": 2048, "hotfix_kb2842230": True}


def test_winrm_quota_hotfix_is_not_needed_on_powershell_4(core: AgentHost) -> None:
    core.command("PSVERSION 4.0")
    assert core.fact("winrm_quota")["hotfix_kb2842230"] is True


# ---------------------------------------------------------------- os, disk, tcp


CURRENT = "HKLM:\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion"


def test_regression_os_architecture_is_not_localized(core: AgentHost) -> None:
    """agent.ps1 answered Win32_OperatingSystem.OSArchitecture: "64 Bits" on a French host."""
    for name, value, kind in [("ProductName", "Windows Server 2019 Datacenter ", "String"),
                              ("CurrentMajorVersionNumber", 10, "DWord"),
                              ("CurrentMinorVersionNumber", 0, "DWord"),
                              ("CurrentBuildNumber", "17763", "String")]:
        core.call("set_registry", key=CURRENT, name=name, value=value, type=kind)
    fact = core.fact("os")
    assert fact["architecture"] == "64-bit"
    assert fact["caption"] == "Windows Server 2019 Datacenter"
    assert (fact["version"], fact["build"]) == ("10.0.17763", 17763)
    assert fact["powershell_version"] == "5.1.0.0"
    assert fact["hostname"] == socket.gethostname()
    assert fact["last_boot_time"].endswith("Z") and core.fact("os")["last_boot_time"] == \
        fact["last_boot_time"]
    assert fact["boot_finished"] is False
    core.call("set_registry", key=CURRENT + "\\Winlogon\\AutoLogonChecked", name="x", value=1,
              type="DWord")
    assert core.fact("os")["boot_finished"] is True


def test_disk(core: AgentHost) -> None:
    import shutil

    fact = core.fact("disk", drive="C:\\")
    assert fact["exists"] is True
    assert fact["total_bytes"] == shutil.disk_usage("/").total
    assert core.fact("disk", drive="Q:") == {"exists": False, "free_bytes": None,
                                            "total_bytes": None}


def test_tcp_loopback(core: AgentHost) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        fact = core.fact("tcp", host="127.0.0.1", port=port, timeout_ms=2000)
        assert fact["reachable"] is True and fact["error"] is None
    finally:
        listener.close()
    closed = core.fact("tcp", host="127.0.0.1", port=port, timeout_ms=2000)
    assert closed["reachable"] is False and closed["error"]


# ---------------------------------------------------------------- services, reboot, script


SERVICES = "HKLM:\\SYSTEM\\CurrentControlSet\\Services"


def _service(core: AgentHost, name: str, status: str = "Stopped", start: int = 3) -> None:
    core.call("batch", requests=[
        ops.request("set_registry", key=f"{SERVICES}\\{name}", name="DisplayName",
                    value=f"{name} display", type="String"),
        ops.request("set_registry", key=f"{SERVICES}\\{name}", name="Start", value=start,
                    type="DWord"),
        ops.request("set_registry", key=f"{SERVICES}\\{name}", name="TestStatus", value=status,
                    type="String"),
    ])


def test_service_fact_and_set_service(core: AgentHost) -> None:
    _service(core, "svagents")
    assert core.fact("service", name="svagents display") == {
        "exists": True, "name": "svagents", "display_name": "svagents display",
        "status": "Stopped", "start_mode": "Manual"}
    result = core.call("set_service", name="svagents", state="running",
                       start_mode="AutomaticDelayed")
    assert result == {"changed": True, "status": "Running", "start_mode": "AutomaticDelayed"}
    assert core.command("CALLS") == [["SetStartMode", "svagents", "AutomaticDelayed"],
                                     ["SetServiceState", "svagents", True, 60]]
    again = core.call("set_service", name="svagents", state="running",
                      start_mode="AutomaticDelayed")
    assert again["changed"] is False and core.command("CALLS") == []
    assert core.answer(ops.request("set_service", name="nope"))["error"]["type"] == "NotFound"
    assert core.fact("service", name="nope")["exists"] is False


def test_reboot_replaces_a_scheduled_shutdown(core: AgentHost) -> None:
    core.call("set_registry", key=CURRENT + "\\Winlogon\\AutoLogonChecked", name="x", value=1,
              type="DWord")
    core.command("TOOLEXIT 1190 0 0")
    result = core.call("reboot", delay_s=7, reason="pushinstall: step «one»")
    assert result["boot_time_before"] == core.fact("os")["last_boot_time"]
    shutdown = ["/r", "/f", "/t", "7", "/d", "p:4:1", "/c", "pushinstall: step _one_"]
    assert core.command("CALLS") == [["RunTool", "shutdown.exe", shutdown],
                                     ["RunTool", "shutdown.exe", ["/a"]],
                                     ["RunTool", "shutdown.exe", shutdown]]
    assert core.fact("os")["boot_finished"] is False     # LogonUI recreates it after the boot
    core.command("TOOLEXIT 5")
    assert core.answer(ops.request("reboot"))["error"]["type"] == "Exception"


def test_script_needs_the_shim(core: AgentHost) -> None:
    answer = core.answer(ops.request("script", source="1"))
    assert answer["error"] == {"type": "Exception",
                               "message": "the script op needs the PowerShell shim"}


def test_sealed_secret_fields_open_inside_the_core(core: AgentHost, tmp_path: Path) -> None:
    from pushinstall.remote import sealing

    key = sealing.public_key_of(sealing.KEY_SENTINEL + json.dumps(core.command("KEY")))
    assert key is not None
    path = tmp_path / "p.txt"
    plain = ops.request("write_secret", path=str(path), content="pässwörd")
    request = sealing.seal(plain, key)
    encoded = ops.encode_request(request)
    assert "pässwörd" not in base64.b64decode(encoded).decode()
    assert core.line(encoded) == {"ok": True, "result": {"changed": True}}
    assert path.read_text(encoding="utf-8") == "pässwörd"
    credential = {"username": "u", "password": "hunter2"}
    inner = sealing.seal(ops.batch([ops.request("download", source="\\\\s\\h\\x",
                                                destination=str(tmp_path / "x"),
                                                credential=credential)]), key)
    assert "hunter2" not in json.dumps(inner)
    core.command("SHARE 5")
    core.line(ops.encode_request(inner))
    assert core.command("CALLS")[-1] == ["ConnectShare", "\\\\s\\h", "u", "hunter2"]
    stranger = sealing.public_key_of(sealing.KeyPair().key_line())
    assert stranger is not None
    other = sealing.seal(plain, stranger)
    assert core.answer(other)["error"]["type"] == "InvalidArgument"
