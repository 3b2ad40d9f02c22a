"""Every resource type's plan, decided from fact dicts alone (pure: no host, no I/O)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from pushinstall.model import Decision
from pushinstall.resources import (
    archive,
    command,
    directory,
    file,
    package,
    pending_reboot,
    reboot,
    registry,
    script,
    service,
)
from pushinstall.secret import Secret

UA = "{275197FC-14FD-4560-A5EB-38217F80CBD1}"
STATUS_KEY = "HKLM:\\SOFTWARE\\Wow6432Node\\InMage Systems\\Installed Products\\5"


def signals(**on: bool) -> dict[str, Any]:
    names = ("pending_file_rename", "pending_file_rename2", "component_based_servicing",
             "windows_update", "computer_rename")
    found = {name: bool(on.get(name)) for name in names}
    return {"pending": {"pending": any(found.values()), "signals": found}}


# ---------------------------------------------------------------- pending_reboot


def test_pending_reboot_probes_the_signals() -> None:
    assert [p.query for p in pending_reboot.probes({})] == [{"kind": "pending_reboot"}]


@pytest.mark.parametrize(("policy", "status"), [("fail", Decision.FAIL), ("warn", Decision.OK),
                                                ("reboot", Decision.CHANGE)])
def test_pending_reboot_follows_on_pending(policy: str, status: str) -> None:
    plan = pending_reboot.plan({"on_pending": policy}, signals(windows_update=True))
    assert plan.status == status
    if status != Decision.OK:
        assert plan.diff == "pending reboot: yes (windows_update) -> no"
    assert "windows_update" in plan.reason


def test_pending_reboot_default_is_fail_and_nothing_pending_is_ok() -> None:
    assert pending_reboot.plan({}, signals(pending_file_rename=True)).status == Decision.FAIL
    assert pending_reboot.plan({"on_pending": "fail"}, signals()).status == Decision.OK


def test_pending_reboot_ignores_named_signals() -> None:
    found = signals(pending_file_rename=True, computer_rename=True)
    plan = pending_reboot.plan({"ignore": ["pending_file_rename", "computer_rename"]}, found)
    assert plan.status == Decision.OK
    plan = pending_reboot.plan({"ignore": ["pending_file_rename"]}, found)
    assert plan.status == Decision.FAIL and "computer_rename" in plan.diff
    assert "pending_file_rename" not in plan.diff


def test_a_probe_that_answered_an_error_fails_the_step() -> None:
    found = {"pending": {"error": {"type": "AccessDenied", "message": "Requested registry "
                                                                      "access is not allowed."}}}
    plan = pending_reboot.plan({}, found)
    assert plan.status == Decision.FAIL
    assert "AccessDenied: Requested registry access is not allowed." in plan.reason


# ---------------------------------------------------------------- directory


def test_directory_plans() -> None:
    args = {"path": "C:\\Temp\\ASR"}
    assert directory.probes(args)[0].query == {"kind": "file", "path": "C:\\Temp\\ASR",
                                               "hash": False}
    absent = directory.plan(args, {"path": {"exists": False, "is_directory": False}})
    assert (absent.status, absent.diff) == (Decision.CHANGE,
                                            "directory 'C:\\Temp\\ASR': absent -> present")
    assert (directory.plan(args, {"path": {"exists": True, "is_directory": True}}).status
            == Decision.OK)
    blocked = directory.plan(args, {"path": {"exists": True, "is_directory": False}})
    assert blocked.status == Decision.FAIL and "a file is in the way" in blocked.reason


# ---------------------------------------------------------------- file


def fact(sha256: str | None, exists: bool = True, directory: bool = False) -> dict[str, Any]:
    return {"dest": {"exists": exists, "is_directory": directory, "sha256": sha256,
                     "size": 10, "modified": "2026-11-26T18:10:21Z"}}


A, B = "a" * 64, "b" * 64
UNC = {"dest": "C:\\Temp\\ua.exe", "src": "\\\\srv\\share\\ua.exe", "sha256": A}


def test_file_from_a_share_is_skipped_when_the_hash_matches() -> None:
    assert file.probes(UNC)[0].query == {"kind": "file", "path": "C:\\Temp\\ua.exe"}
    assert file.plan(UNC, fact(A)).status == Decision.OK
    assert file.plan({**UNC, "sha256": A.upper()}, fact(A)).status == Decision.OK


def test_file_diffs_say_what_changes() -> None:
    absent = file.plan(UNC, fact(None, exists=False))
    assert absent.status == Decision.CHANGE
    assert absent.diff == ("file 'C:\\Temp\\ua.exe': absent -> sha256 aaaaaaaaaaaa from "
                           "\\\\srv\\share\\ua.exe")
    other = file.plan(UNC, fact(B))
    assert other.diff.startswith("file 'C:\\Temp\\ua.exe': sha256 bbbbbbbbbbbb -> sha256 aaaa")
    assert file.plan(UNC, fact(None, directory=True)).status == Decision.FAIL


def test_file_url_query_string_never_shows() -> None:
    args = {"dest": "C:\\Temp\\ua.exe", "src": "https://blob/x/ua.exe?sig=SECRETSAS"}
    plan = file.plan(args, fact(None, exists=False))
    assert plan.status == Decision.CHANGE and "SECRETSAS" not in plan.diff
    assert "https://blob/x/ua.exe" in plan.diff


def test_file_without_hash_is_ok_when_present_unless_forced() -> None:
    args = {"dest": "C:\\Temp\\ua.exe", "src": "http://labweb/asr/ua.exe"}
    assert file.plan(args, fact(B)).status == Decision.OK
    forced = file.plan({**args, "force": True}, fact(B))
    assert forced.status == Decision.CHANGE and forced.verifiable is False


def test_file_from_the_controller_uses_its_own_hash(tmp_path: Path) -> None:
    local = tmp_path / "ua.exe"
    local.write_bytes(b"installer")
    digest = hashlib.sha256(b"installer").hexdigest()
    args = {"dest": "C:\\Temp\\ua.exe", "src": str(local)}
    assert file.plan(args, fact(digest)).status == Decision.OK
    assert file.plan(args, fact(B)).status == Decision.CHANGE
    wrong = file.plan({**args, "sha256": A}, fact(digest))
    assert wrong.status == Decision.FAIL and digest in wrong.reason and A in wrong.reason
    missing = file.plan({**args, "src": str(tmp_path / "nope.exe")}, fact(digest))
    assert missing.status == Decision.FAIL and "cannot read the controller file" in missing.reason


# ---------------------------------------------------------------- archive


def test_archive_is_done_when_the_marker_holds_the_zip_hash() -> None:
    args = {"src": "C:\\Temp\\cfg.zip", "dest": "C:\\Temp\\cfg"}
    queries = [p.query for p in archive.probes(args)]
    assert queries[1] == {"kind": "file", "path": "C:\\Temp\\cfg\\.pushinstall-expanded"}
    marker_sha = hashlib.sha256(A.encode()).hexdigest()
    zip_fact = {"exists": True, "is_directory": False, "sha256": A}
    done = archive.plan(args, {"archive": zip_fact, "marker": {"exists": True,
                                                               "sha256": marker_sha}})
    assert done.status == Decision.OK
    stale = archive.plan(args, {"archive": zip_fact, "marker": {"exists": True, "sha256": B}})
    assert stale.status == Decision.CHANGE and "extracted from another archive" in stale.diff
    fresh = archive.plan(args, {"archive": zip_fact, "marker": {"exists": False}})
    assert fresh.diff == ("archive 'C:\\Temp\\cfg.zip' in 'C:\\Temp\\cfg': not extracted -> "
                          "extracted (sha256 aaaaaaaaaaaa)")
    gone = archive.plan(args, {"archive": {"exists": False}, "marker": {"exists": False}})
    assert gone.status == Decision.FAIL


# ---------------------------------------------------------------- package


def product(installed: bool, version: str = "9.62.0.0") -> dict[str, Any]:
    return {"installed": installed, "product_id": UA if installed else None,
            "name": "ASR" if installed else None, "version": version if installed else None}


def test_package_probes_product_and_creates() -> None:
    args = {"path": "C:\\x.exe", "product_id": UA, "creates": "C:\\done"}
    assert [p.query for p in package.probes(args)] == [
        {"kind": "product", "product_id": UA},
        {"kind": "file", "path": "C:\\done", "hash": False}]


def test_package_plans() -> None:
    args = {"path": "C:\\x.exe", "product_id": UA, "name": "ASR Mobility", "version": "9.62.0.0"}
    assert package.plan(args, {"product": product(True)}).status == Decision.OK
    absent = package.plan(args, {"product": product(False)})
    assert absent.diff == "package 'ASR Mobility': absent -> installed 9.62.0.0"
    old = package.plan(args, {"product": product(True, "9.60.0.0")})
    assert old.diff == "package 'ASR Mobility': version 9.60.0.0 -> version 9.62.0.0"
    creates = {"path": "C:\\x.exe", "creates": "C:\\done"}
    assert package.plan(creates, {"creates": {"exists": True}}).status == Decision.OK
    assert package.plan(creates, {"creates": {"exists": False}}).status == Decision.CHANGE


# ---------------------------------------------------------------- service


def svc(status: str, mode: str = "Automatic", exists: bool = True) -> dict[str, Any]:
    return {"service": {"exists": exists, "name": "svagents", "display_name": "svagents",
                        "status": status if exists else None,
                        "start_mode": mode if exists else None}}


def test_service_diffs_are_human() -> None:
    args = {"name": "svagents", "state": "running", "start_mode": "auto"}
    assert service.plan(args, svc("Running")).status == Decision.OK
    plan = service.plan(args, svc("Stopped", "Manual"))
    assert plan.status == Decision.CHANGE
    assert plan.diff.splitlines() == ["service 'svagents': Stopped -> Running",
                                      "service 'svagents' start mode: Manual -> Automatic"]
    assert (service.plan({"name": "svagents", "state": "stopped"}, svc("Stopped")).status
            == Decision.OK)
    delayed = service.plan({"name": "svagents", "start_mode": "delayed"}, svc("Running"))
    assert delayed.diff == "service 'svagents' start mode: Automatic -> AutomaticDelayed"


def test_service_absent() -> None:
    ok = service.plan({"name": "svagents", "ensure": "absent-ok"}, svc("", exists=False))
    assert ok.status == Decision.OK and "absent-ok" in ok.reason
    missing = service.plan({"name": "svagents"}, svc("", exists=False))
    assert (missing.status == Decision.FAIL
            and missing.diff == "service 'svagents': absent -> Running")


# ---------------------------------------------------------------- registry


def reg(value: Any, value_type: str = "String", exists: bool = True) -> dict[str, Any]:
    return {"value": {"key_exists": exists, "exists": exists, "value": value if exists else None,
                      "type": value_type if exists else None}}


def test_registry_assert_fails_with_both_values() -> None:
    args = {"key": STATUS_KEY, "name": "AgentConfigurationStatus", "value": "Succeeded",
            "mode": "assert"}
    assert registry.probes(args)[0].query == {"kind": "registry", "key": STATUS_KEY,
                                              "name": "AgentConfigurationStatus", "view": "64"}
    assert registry.plan(args, reg("Succeeded")).status == Decision.OK
    plan = registry.plan(args, reg("Failed"))
    assert plan.status == Decision.FAIL
    assert "expected 'Succeeded', found 'Failed'" in plan.reason
    assert plan.diff == (f"registry {STATUS_KEY}\\AgentConfigurationStatus: 'Failed' -> "
                         "'Succeeded'")
    assert registry.plan(args, reg(None, exists=False)).status == Decision.FAIL


def test_registry_set_compares_numbers_as_numbers() -> None:
    args = {"key": "HKLM:\\SOFTWARE\\X", "name": "Enabled", "value": "1", "type": "DWord"}
    assert registry.plan(args, reg(1, "DWord")).status == Decision.OK
    plan = registry.plan(args, reg(0, "DWord"))
    assert (plan.status, plan.diff) == (Decision.CHANGE,
                                        "registry HKLM:\\SOFTWARE\\X\\Enabled: 0 -> 1")
    typed = registry.plan(args, reg("1", "String"))
    assert typed.status == Decision.CHANGE and "(String)" in typed.diff and "(DWord)" in typed.diff
    absent = registry.plan(args, reg(None, exists=False))
    assert absent.diff.endswith(": (absent) -> 1")
    bad = registry.plan({**args, "value": "lots"}, reg(0, "DWord"))
    assert bad.status == Decision.FAIL


def test_registry_secret_value_is_masked_in_the_diff() -> None:
    args = {"key": "HKLM:\\SOFTWARE\\X", "name": "Token", "value": Secret("hunter22")}
    plan = registry.plan(args, reg("old"))
    assert (plan.status == Decision.CHANGE
            and "hunter22" not in plan.diff and "********" in plan.diff)
    assert registry.plan(args, reg("hunter22")).status == Decision.OK


# ---------------------------------------------------------------- command


def test_command_guards() -> None:
    args = {"path": "C:\\Windows\\System32\\cmd.exe", "arguments": ["/c", "echo", "a b"],
            "creates": "C:\\done.txt"}
    ran = command.plan(args, {"creates": {"exists": False}})
    assert ran.status == Decision.CHANGE and ran.verifiable
    assert ran.diff == ('command "C:\\Windows\\System32\\cmd.exe" /c echo "a b": not run -> run')
    assert command.plan(args, {"creates": {"exists": True}}).status == Decision.OK
    unguarded = command.plan({"path": "C:\\x.exe"}, {})
    assert unguarded.status == Decision.CHANGE and unguarded.verifiable is False


@pytest.mark.parametrize(("condition", "found", "holds"), [
    ({"registry": {"key": STATUS_KEY, "name": "AgentConfigurationStatus"},
      "equals": "Succeeded"}, {"exists": True, "value": "Succeeded"}, True),
    ({"registry": {"key": STATUS_KEY, "name": "AgentConfigurationStatus"},
      "equals": "Succeeded"}, {"exists": True, "value": "Failed"}, False),
    ({"registry": {"key": "HKLM:\\X", "name": "N", "view": "32"}, "equals": 1},
     {"exists": True, "value": 1}, True),
    ({"file": "C:\\done"}, {"exists": True}, True),
    ({"file": "C:\\done"}, {"exists": False}, False),
    ({"service": "svagents", "status": "Running"}, {"exists": True, "status": "Running"}, True),
    ({"service": "svagents", "status": "Running"}, {"exists": True, "status": "Stopped"}, False),
    ({"product": {"product_id": UA}}, {"installed": True}, True),
    ({"product": {"name": "ASR"}}, {"installed": False}, False),
])
def test_command_unless(condition: dict[str, Any], found: dict[str, Any], holds: bool) -> None:
    args = {"path": "C:\\x.exe", "unless": condition}
    probe = command.probes(args)[0]
    assert probe.query is not None and probe.query["kind"] in condition
    plan = command.plan(args, {"unless": found})
    assert plan.status == (Decision.OK if holds else Decision.CHANGE)
    if holds:
        assert plan.reason.startswith("unless: ")


# ---------------------------------------------------------------- script and reboot


def test_script_test_decides() -> None:
    args = {"test": "$Parameters.Done", "set": "'x'", "parameters": {"Done": True}}
    probe = script.probes(args)[0]
    assert probe.request == {"op": "script", "args": {"source": "$Parameters.Done",
                                                      "parameters": {"Done": True}}}
    ok = {"output": ["True"], "errors": [], "success": True}
    assert script.plan(args, {"test": ok}).status == Decision.OK
    no = script.plan(args, {"test": {"output": ["False"], "errors": [], "success": True}})
    assert (no.status, no.diff) == (Decision.CHANGE, "script test: False -> True")
    broken = script.plan(args, {"test": {"output": [], "errors": ["boom"], "success": False}})
    assert broken.status == Decision.FAIL and "boom" in broken.reason
    lost = script.plan(args, {"test": {"error": {"type": "Exception", "message": "gone"}}})
    assert lost.status == Decision.FAIL and "gone" in lost.reason
    untested = script.plan({"set": "'x'"}, {})
    assert untested.status == Decision.CHANGE and untested.verifiable is False
    assert script.probes({"set": "'x'"}) == []


def test_reboot_always_changes_and_is_not_verified() -> None:
    assert reboot.probes({}) == []
    plan = reboot.plan({"reason": "kernel patch"}, {})
    assert (plan.status, plan.verifiable, plan.reason) == (Decision.CHANGE, False, "kernel patch")
    assert plan.diff == "host: running -> restarted"
