"""Every op of docs/ops.md against a lab host, through the real protocol path.

Each request goes `ops.invocation` -> `LabHost.handle_line` -> answer line ->
`ops.decode_answer` (LabTransport does exactly that), so the encoding is exercised too.
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from kit import LabContext, call, connect

from pushinstall.errors import RemoteOpFailed
from pushinstall.lab import LabHost, catalog
from pushinstall.lab.transport import LabTransport
from pushinstall.remote import ops


def failure(transport: LabTransport, op: str, **args: Any) -> dict[str, str]:
    answer = transport.call(ops.request(op, **args))
    assert answer["ok"] is False, answer
    error: dict[str, str] = answer["error"]
    return error


def facts(transport: LabTransport, *queries: dict[str, Any]) -> dict[str, Any]:
    numbered = [{"id": str(i), **q} for i, q in enumerate(queries)]
    result = call(transport, "facts", queries=numbered)
    return [result[str(i)] for i in range(len(queries))]  # type: ignore[return-value]


def test_handle_line_answers_only_the_exact_invocation_shape() -> None:
    host = connect().lab
    good = host.handle_line(ops.invocation(ops.request("facts", queries=[])))
    assert ops.decode_answer(good) == ops.ok({})
    for line in ("Invoke-PushinstallOp -Request 'e30=' ; Remove-Item C:\\",
                 "Get-Process", "Invoke-PushinstallOp -Request \"e30=\"",
                 "Invoke-PushinstallOp -Request '$(calc)'"):
        answer = ops.decode_answer(host.handle_line(line))
        assert answer["ok"] is False and answer["error"]["type"] == "InvalidArgument", line
    garbage = ops.decode_answer(host.handle_line("Invoke-PushinstallOp -Request 'AAAA'"))
    assert garbage["error"]["type"] == "InvalidArgument"


def test_unknown_op_and_bad_arguments() -> None:
    transport = connect()
    assert transport.call({"op": "format_disk", "args": {}})["error"]["type"] == "UnknownOp"
    error = failure(transport, "ensure_directory", path=3)
    assert error["type"] == "InvalidArgument" and "'path'" in error["message"]
    assert failure(transport, "set_service", name="x", state="paused")["type"] == \
        "InvalidArgument"
    assert failure(transport, "file_begin", destination="C:\\x", size=1,
                   sha256="nothex")["type"] == "InvalidArgument"


def test_batch_answers_each_request_and_one_failure_does_not_stop_the_rest() -> None:
    transport = connect()
    answers = call(transport, "batch", requests=[
        ops.request("ensure_directory", path="C:\\Temp\\a"),
        ops.request("remove_file", path=3),
        {"op": "nope", "args": {}},
        ops.request("ensure_directory", path="C:\\Temp\\b"),
    ])
    assert [a["ok"] for a in answers] == [True, False, False, True]
    assert answers[1]["error"]["type"] == "InvalidArgument"
    assert answers[2]["error"]["type"] == "UnknownOp"
    assert transport.lab.op_log == ["batch"]


def test_facts_shapes_match_the_contract() -> None:
    transport = connect()
    registry, file_, service, product, pending, os_, disk, tcp = facts(
        transport,
        {"kind": "registry", "key": "HKLM:\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion",
         "name": "CurrentBuild"},
        {"kind": "file", "path": "C:\\Windows\\System32\\msiexec.exe"},
        {"kind": "service", "name": "Windows Remote Management (WS-Management)"},
        {"kind": "product", "product_id": "{275197FC-14FD-4560-A5EB-38217F80CBD1}"},
        {"kind": "pending_reboot"}, {"kind": "os"}, {"kind": "disk", "drive": "C:"},
        {"kind": "tcp", "host": "10.0.0.115", "port": 443},
    )
    assert registry == {"key_exists": True, "exists": True, "value": "17763", "type": "String"}
    assert file_["exists"] and not file_["is_directory"] and len(file_["sha256"]) == 64
    assert file_["modified"].endswith("Z")
    assert service == {"exists": True, "name": "WinRM",
                       "display_name": "Windows Remote Management (WS-Management)",
                       "status": "Running", "start_mode": "AutomaticDelayed"}
    assert product == {"installed": False, "product_id": None, "name": None, "version": None,
                       "install_location": None, "view": None}
    assert pending["pending"] is False and set(pending["signals"]) == set(ops.PENDING_SIGNALS)
    assert os_["hostname"] == "WEB01" and os_["build"] == 17763
    assert os_["boot_finished"] is True
    assert disk["exists"] and disk["free_bytes"] == 50 * 1024**3
    assert tcp["reachable"] is True


def test_facts_errors_are_per_query() -> None:
    transport = connect(cs_port_closed=True)
    result = call(transport, "facts", queries=[
        {"id": "bad", "kind": "registry", "key": "HKXX:\\nope"},
        {"id": "worse", "kind": "nonsense"},
        {"id": "missing", "kind": "file", "path": "C:\\nope.txt"},
        {"id": "cs", "kind": "tcp", "host": "10.0.0.115", "port": 443, "timeout_ms": 500},
        {"id": "d", "kind": "disk", "drive": "Q:"},
    ])
    assert result["bad"]["error"]["type"] == "InvalidArgument"
    assert result["worse"]["error"]["type"] == "InvalidArgument"
    assert result["missing"]["exists"] is False
    assert result["cs"] == {"reachable": False, "elapsed_ms": 500,
                            "error": "no answer within 500 ms"}
    assert result["d"] == {"exists": False, "free_bytes": None, "total_bytes": None}


def test_registry_views_and_set_registry() -> None:
    transport = connect()
    key = "HKLM:\\SOFTWARE\\Contoso\\App"
    assert call(transport, "set_registry", key=key, name="Level", value=7, type="DWord",
               view="32") == {"changed": True}
    assert call(transport, "set_registry", key=key, name="Level", value=7, type="DWord",
               view="32") == {"changed": False}
    in32, in64, redirected = facts(
        transport, {"kind": "registry", "key": key, "name": "level", "view": "32"},
        {"kind": "registry", "key": key, "name": "Level"},
        {"kind": "registry", "key": "HKEY_LOCAL_MACHINE\\SOFTWARE\\WOW6432Node\\Contoso\\App",
         "name": "Level"})
    assert in32 == {"key_exists": True, "exists": True, "value": 7, "type": "DWord"}
    assert in64["key_exists"] is False
    assert redirected["value"] == 7
    call(transport, "set_registry", key=key, name="Paths", value=["a", "b"], type="MultiString")
    call(transport, "set_registry", key=key, name="Blob", value="AAEC", type="Binary")
    paths, blob = facts(transport, {"kind": "registry", "key": key, "name": "Paths"},
                        {"kind": "registry", "key": key, "name": "Blob"})
    assert paths["value"] == ["a", "b"] and blob == {"key_exists": True, "exists": True,
                                                     "value": "AAEC", "type": "Binary"}
    assert failure(transport, "set_registry", key="HKLM:\\X", name="n", value="x",
                   type="DWord")["type"] == "InvalidArgument"


def test_pending_reboot_signals_follow_the_registry() -> None:
    transport = connect()
    call(transport, "set_registry",
        key="HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\WindowsUpdate\\Auto Update"
            "\\RebootRequired", name="x", value=1, type="DWord")
    (pending,) = facts(transport, {"kind": "pending_reboot"})
    assert pending["pending"] and pending["signals"]["windows_update"]


def test_directories_files_and_remove() -> None:
    transport = connect()
    assert call(transport, "ensure_directory", path="C:\\Temp\\deep\\er") == {"changed": True}
    assert call(transport, "ensure_directory", path="c:/temp/DEEP/er/") == {"changed": False}
    (directory,) = facts(transport, {"kind": "file", "path": "C:\\Temp\\deep"})
    assert directory["is_directory"] and directory["sha256"] is None
    assert failure(transport, "ensure_directory", path="D:\\x")["type"] == "NotFound"
    assert failure(transport, "remove_file", path="C:\\Temp")["type"] == "InvalidArgument"
    assert call(transport, "remove_file", path="C:\\Temp\\none.txt") == {"removed": False}


def test_push_file_in_chunks_with_hash_check(tmp_path: Path) -> None:
    transport = connect()
    local = tmp_path / "big.bin"
    local.write_bytes(bytes(range(256)) * 10_000)  # 2.5 MB: three 1 MiB chunks
    sha = hashlib.sha256(local.read_bytes()).hexdigest()
    result = transport.put_file(local, "C:\\Temp\\push\\big.bin", sha)
    assert result == {"changed": True, "sha256": sha, "size": local.stat().st_size}
    assert transport.lab.op_log == ["file_begin", "file_chunk", "file_chunk", "file_chunk",
                                    "file_end"]
    assert transport.lab.file_content("C:\\Temp\\push\\big.bin") == local.read_bytes()
    assert transport.put_file(local, "C:\\Temp\\push\\big.bin", sha)["changed"] is False
    with pytest.raises(RemoteOpFailed) as wrong:
        transport.put_file(local, "C:\\Temp\\push\\other.bin", "0" * 64)
    assert wrong.value.error_type == "HashMismatch"
    leftovers = [p for p in transport.lab.state.fs.files if p.endswith(".pushinstall-part")]
    assert leftovers == []


def test_file_chunk_refuses_foreign_paths_and_begin_checks_space() -> None:
    transport = connect(disk_free_bytes=1000)
    assert failure(transport, "file_chunk", temp_path="C:\\Windows\\System32\\cmd.exe",
                   offset=0, data="AA==")["type"] == "InvalidArgument"
    error = failure(transport, "file_begin", destination="C:\\Temp\\x.bin", size=5000,
                    sha256="0" * 64)
    assert error["type"] == "DiskFull" and "5000" in error["message"]


def test_disk_full_on_write_and_space_comes_back() -> None:
    transport = connect(disk_free_bytes=100)
    assert failure(transport, "write_secret", path="C:\\Temp\\s.txt",
                   content="x" * 101)["type"] == "DiskFull"
    call(transport, "write_secret", path="C:\\Temp\\s.txt", content="x" * 60)
    (disk,) = facts(transport, {"kind": "disk", "drive": "C:"})
    assert disk["free_bytes"] == 40
    call(transport, "remove_file", path="C:\\Temp\\s.txt")
    assert facts(transport, {"kind": "disk", "drive": "c"})[0]["free_bytes"] == 100


def test_download_from_share_and_web_with_faults() -> None:
    transport = connect(http_503=2, share_requires_credential=False)
    name = catalog.VM_AGENT_MSI
    sha = catalog.sha256_of(name)
    result = call(transport, "download", source=catalog.share_path(name),
                 destination="C:\\Temp\\agent.msi", sha256=sha)
    assert result == {"changed": True, "sha256": sha, "size": len(catalog.files()[name])}
    assert call(transport, "download", source=catalog.share_path(name),
               destination="C:\\Temp\\agent.msi", sha256=sha)["changed"] is False
    for _ in range(2):
        error = failure(transport, "download", source=catalog.url(name) + "?sig=SECRET",
                        destination="C:\\Temp\\web.msi")
        assert error["type"] == "DownloadFailed" and "HTTP 503" in error["message"]
        assert "SECRET" not in error["message"]
    assert call(transport, "download", source=catalog.url(name, https=True),
               destination="C:\\Temp\\web.msi")["sha256"] == sha
    assert failure(transport, "download", source=catalog.url("nope.exe"),
                   destination="C:\\Temp\\n")["message"].startswith("HTTP 404")
    assert failure(transport, "download", source="\\\\labshare\\asr\\nope.exe",
                   destination="C:\\Temp\\n")["type"] == "NotFound"
    mismatch = failure(transport, "download", source=catalog.share_path(name),
                       destination="C:\\Temp\\m.msi", sha256="a" * 64)
    assert mismatch["type"] == "HashMismatch" and sha in mismatch["message"]
    assert not transport.lab.state.fs.is_file("C:\\Temp\\m.msi")


def test_share_that_needs_a_credential() -> None:
    transport = connect(share_requires_credential=True)
    source = catalog.share_path(catalog.ASR_BUNDLE)
    assert failure(transport, "download", source=source,
                   destination="C:\\Temp\\b.exe")["type"] == "AccessDenied"
    wrong = failure(transport, "download", source=source, destination="C:\\Temp\\b.exe",
                    credential={"username": "LAB\\svc", "password": "wrong-password"})
    assert wrong["type"] == "AccessDenied" and "wrong-password" not in wrong["message"]
    good = call(transport, "download", source=source, destination="C:\\Temp\\b.exe",
               credential={"username": "LAB\\svc", "password": "lab-share-password"})
    assert good["sha256"] == catalog.sha256_of(catalog.ASR_BUNDLE)
    logged = transport.lab.calls[-1]["args"]["credential"]
    assert logged["password"] == "********"


def test_expand_archive_once_per_hash() -> None:
    transport = connect()
    call(transport, "download", source=catalog.url(catalog.CONFIG_ZIP),
        destination="C:\\Temp\\cfg.zip")
    first = call(transport, "expand_archive", path="C:\\Temp\\cfg.zip",
                destination="C:\\Temp\\cfg")
    assert first == {"changed": True, "files": 2}
    assert call(transport, "expand_archive", path="C:\\Temp\\cfg.zip",
               destination="C:\\Temp\\cfg") == {"changed": False, "files": 0}
    assert b"CSPrime" in transport.lab.file_content("C:\\Temp\\cfg\\config.json")
    assert failure(transport, "expand_archive", path="C:\\Temp\\none.zip",
                   destination="C:\\Temp\\x")["type"] == "NotFound"


def test_expand_archive_refuses_entries_outside_the_destination(tmp_path: Path) -> None:
    transport = connect()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../../Windows/evil.txt", "x")
    local = tmp_path / "evil.zip"
    local.write_bytes(buffer.getvalue())
    transport.put_file(local, "C:\\Temp\\evil.zip", hashlib.sha256(buffer.getvalue()).hexdigest())
    assert failure(transport, "expand_archive", path="C:\\Temp\\evil.zip",
                   destination="C:\\Temp\\out")["type"] == "InvalidArgument"
    assert not transport.lab.state.fs.is_file("C:\\Windows\\evil.txt")


def test_write_secret_never_answers_its_content() -> None:
    transport = connect()
    answer = transport.call(ops.request("write_secret", path="C:\\Temp\\p.txt",
                                        content="hunter2-passphrase"))
    assert answer == ops.ok({"changed": True})
    assert call(transport, "write_secret", path="C:\\Temp\\p.txt",
               content="hunter2-passphrase") == {"changed": False}
    assert transport.lab.state.fs.entry("C:\\Temp\\p.txt")["secret"] is True
    assert "hunter2" not in repr(transport.lab.calls)
    transport.lab.flush()
    state_text = transport.lab.path.read_text(encoding="utf-8")
    assert "hunter2" not in state_text  # only in the simulated disk's blob, like a real disk


def test_set_service_states_modes_and_faults() -> None:
    transport = connect(services_that_wont_start=["Spooler"],
                        service_stops_after_start=["W32Time"])
    assert call(transport, "set_service", name="Print Spooler", state="stopped") == {
        "changed": True, "status": "Stopped", "start_mode": "Automatic"}
    error = failure(transport, "set_service", name="Spooler", state="running", timeout_s=5)
    assert error["type"] == "ServiceFailed" and "status Stopped" in error["message"]
    call(transport, "set_service", name="W32Time", state="stopped")
    started = call(transport, "set_service", name="W32Time", state="running")
    assert started["status"] == "Running"  # it did start ...
    (service,) = facts(transport, {"kind": "service", "name": "W32Time"})
    assert service["status"] == "Stopped"  # ... and crashed right after
    assert call(transport, "set_service", name="wuauserv", start_mode="Disabled")["changed"]
    assert failure(transport, "set_service", name="wuauserv",
                   state="running")["type"] == "ServiceFailed"
    delayed = call(transport, "set_service", name="wuauserv", start_mode="AutomaticDelayed",
                  state="running")
    assert delayed == {"changed": True, "status": "Running", "start_mode": "AutomaticDelayed"}
    assert failure(transport, "set_service", name="nosuch", state="running")["type"] == \
        "NotFound"


def test_run_process_system_tools_and_errors() -> None:
    transport = connect()
    result = call(transport, "run_process", path="cmd.exe", arguments=["/c", "echo", "hi there"])
    assert result["exit_code"] == 0 and result["stdout_tail"] == ["hi there"]
    assert result["command_line"] == '"cmd.exe" /c echo "hi there"'
    assert call(transport, "run_process", path="C:\\Windows\\System32\\cmd.exe",
               arguments=["/c", "exit", "7"])["exit_code"] == 7
    assert call(transport, "run_process", path="powershell",
               arguments=["-NoProfile", "-Command", "exit 3"])["exit_code"] == 3
    assert failure(transport, "run_process", path="C:\\nope.exe")["type"] == "NotFound"
    assert failure(transport, "run_process", path="cmd.exe",
                   working_directory="C:\\nope")["type"] == "NotFound"
    call(transport, "write_secret", path="C:\\Temp\\notes.exe", content="just text")
    assert failure(transport, "run_process", path="C:\\Temp\\notes.exe")["type"] == "Exception"
    created = call(transport, "run_process", path="sc.exe",
                  arguments=["create", "LabSvc", "binPath=", "C:\\svc.exe", "start=", "auto"])
    assert created["exit_code"] == 0
    (service,) = facts(transport, {"kind": "service", "name": "LabSvc"})
    assert service["start_mode"] == "Automatic" and service["status"] == "Stopped"


def test_run_process_timeout_kills_the_installer() -> None:
    transport = connect(installer_seconds=5, share_requires_credential=False)
    call(transport, "download", source=catalog.share_path(catalog.VM_AGENT_MSI),
        destination="C:\\Temp\\a.msi")
    result = call(transport, "run_process", path="msiexec.exe",
                 arguments=["/i", "C:\\Temp\\a.msi", "/q"], timeout_s=1)
    assert result["timed_out"] is True and 0.9 <= result["duration_s"] < 4
    (product,) = facts(transport, {"kind": "product", "product_id":
                                   "{5CF4D04A-F16C-4892-9196-6025EA61F964}"})
    assert product["installed"] is False


def test_script_parameters_are_data() -> None:
    transport = connect()
    result = call(transport, "script", source="# lab\n'start'\nWrite-Output $Parameters.Who\n"
                                             "$Parameters['List']",
                 parameters={"who": "$(Remove-Item C:\\)", "List": ["a", "b"]})
    assert result == {"output": ["start", "$(Remove-Item C:\\)", "a", "b"], "errors": [],
                      "success": True}
    failed = call(transport, "script", source="Get-Process\n'never'")
    assert failed["success"] is False and failed["output"] == []
    thrown = call(transport, "script", source="Write-Error 'soft'\nthrow 'hard'\n'never'")
    assert thrown == {"output": [], "errors": ["soft", "hard"], "success": False}


def test_reboot_goes_dark_then_comes_back_with_a_new_boot_time() -> None:
    # Dark for a minute, ended by hand once the refused call has met it: a short window of
    # wall time would end during a stall of this process (load 12) before the checks below.
    transport = connect(pending_reboot=["pending_file_rename", "computer_rename"],
                        reboot_seconds=60)
    (os_before, pending) = facts(transport, {"kind": "os"}, {"kind": "pending_reboot"})
    assert pending["signals"]["computer_rename"] and pending["pending"]
    answer = call(transport, "reboot", delay_s=0, reason="pushinstall")
    assert answer == {"boot_time_before": os_before["last_boot_time"]}
    assert transport.lab.connection_fault() == "unreachable"
    with pytest.raises(Exception, match="connection refused"):
        transport.call(ops.request("facts", queries=[]))
    transport.lab.state.put("dark_until", 0.0)  # the minute has passed
    transport.open()
    (os_after, pending) = facts(transport, {"kind": "os"}, {"kind": "pending_reboot"})
    assert os_after["last_boot_time"] > os_before["last_boot_time"]
    assert pending["pending"] is False


def test_op_log_and_generation_show_what_changed() -> None:
    transport = connect()
    host: LabHost = transport.lab
    generation = host.generation
    call(transport, "batch", requests=[ops.request("facts", queries=[{"id": "os", "kind": "os"}])])
    assert host.generation == generation and host.op_log == ["batch"]
    call(transport, "ensure_directory", path="C:\\Temp\\new")
    assert host.generation == generation + 1
    assert base64.b64decode(ops.encode_request(host.calls[-1]))  # calls are plain requests


def test_put_file_pushes_in_chunks(host: LabHost, tmp_path: Path) -> None:
    local = tmp_path / "blob.bin"
    data = bytes(range(256)) * 9000  # more than two 1 MiB chunks
    local.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    result = LabContext(host).put_file(local, "C:\\Temp\\blob.bin", digest)
    assert result["changed"] is True
    assert host.file_content("C:\\Temp\\blob.bin") == data
    assert host.op_log.count("file_chunk") == 3
