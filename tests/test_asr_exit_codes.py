"""The installer's exit codes as the shipped playbook meets them, over the lab's PSRP wire:
each failure gives its message and the tail of the right log; 98/97 (installer) and 3010
(configurator) are restarts taken per the reboot policy, never failures. Then preflight: each
failed check stops its host before any change. The lab host model stands in for Windows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from asr_kit import MOBILITY, cli, fleet, recap

from pushinstall.lab import lab_host
from pushinstall.lab.products import UA_PRODUCT_ID

CHANGING_OPS = {"ensure_directory", "download", "file_begin", "run_process", "write_secret",
                "set_service", "set_registry", "reboot", "expand_archive"}


@pytest.mark.parametrize(("lab", "step", "message", "log"), [
    ({"installer_exit_code": 15}, "Install Mobility service",
     "exit 15: a newer version is installed", "ASRUnifiedAgentInstaller.log"),
    ({"installer_exit_code": 2}, "Install Mobility service",
     "exit 2: invalid arguments", "ASRUnifiedAgentInstaller.log"),
    ({"installer_exit_code": 41}, "Install Mobility service",
     "exit 41: another installation is running", "ASRUnifiedAgentInstaller.log"),
    ({"installer_exit_code": 62}, "Install Mobility service",
     "exit 62: a filter driver of an earlier install remains", "ASRUnifiedAgentInstaller.log"),
    ({"installer_exit_code": 1}, "Install Mobility service",
     "exit 1: installation failed", "ASRUnifiedAgentInstaller.log"),
    ({"configurator_exit_code": 14}, "Register with the configuration server",
     "exit 14: invalid passphrase", "ASRUnifiedAgentConfigurator.log"),
    ({"configurator_exit_code": 17}, "Register with the configuration server",
     "exit 17: registration with the configuration server failed",
     "ASRUnifiedAgentConfigurator.log"),
])
def test_a_failed_install_or_registration_says_why_with_the_log_tail(
        lab: dict[str, Any], step: str, message: str, log: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    inventory = fleet(tmp_path, {"bad": {"lab": lab}})
    report = tmp_path / "run.jsonl"
    code, out = cli(capsys, "run", "-i", inventory, MOBILITY, "--jsonl", str(report))
    assert code == 2 and recap(out) == {"bad": "failed"}, out
    assert f"bad  step '{step}'  failed: {message}" in out
    # the tail of the right log comes back, in the console and in the report
    assert f"lines of C:\\ProgramData\\ASRSetupLogs\\{log}:" in out
    assert f"lines of C:\\\\ProgramData\\\\ASRSetupLogs\\\\{log}:" in report.read_text()
    # the passphrase file is gone whatever the installer answered
    assert not lab_host("bad").state.fs.is_file("C:\\ProgramData\\pushinstall\\passphrase.txt")


def test_the_modernized_configurator_answers_19_for_a_bad_source_config(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("not json", encoding="utf-8")
    inventory = fleet(tmp_path, {"m": None}, asr_mode="modernized",
                      asr_source_config={"file": str(bad)})
    code, out = cli(capsys, "run", "-i", inventory, MOBILITY)
    assert code == 2, out
    assert "m  step 'Register with the replication appliance'  failed: exit 19: invalid " \
           "source configuration file" in out


@pytest.mark.parametrize(("lab", "step"), [
    ({"installer_exit_code": 98, "reboot_seconds": 0}, "Install Mobility service"),
    ({"installer_exit_code": 97, "reboot_seconds": 0}, "Install Mobility service"),
    ({"configurator_exit_code": 3010, "reboot_seconds": 0},
     "Register with the configuration server"),
])
def test_restart_codes_follow_the_reboot_policy(
        lab: dict[str, Any], step: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    inventory = fleet(tmp_path, {"r": {"lab": lab}})
    code, out = cli(capsys, "run", "-i", inventory, MOBILITY)
    assert code == 0 and recap(out) == {"r": "changed"}, out
    assert f"r  rebooted for step '{step}'" in out


@pytest.mark.parametrize(("lab", "problem"), [
    ({"os": "2012"}, "Windows Server 2012 is not supported"),
    ({"os": "2008r2"}, "Windows Server 2008 R2 is not supported"),
    ({"os": "2012", "max_memory_per_shell_mb": 150},
     "PowerShell 3.0: a remote shell's memory quota stops a 600 MB installer; install "
     "KB2842230"),
    # 501 MB: the agent and its compiled core, cached on C: by the first call, take < 1 MB
    ({"disk_free_bytes": 501 * 1024**2}, "C: has 500 MB free, 2048 MB needed"),
    ({"cs_port_closed": True}, "the target cannot reach the configuration server on 443"),
    ({"install_running": True}, "another installation is running"),
    ({"registered_to": "10.0.0.99"}, "the agent is registered to 10.0.0.99, not 10.0.0.115"),
])
def test_each_preflight_failure_stops_the_host_before_any_change(
        lab: dict[str, Any], problem: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    inventory = fleet(tmp_path, {"pre": {"lab": lab}})
    code, out = cli(capsys, "run", "-i", inventory, MOBILITY)
    assert code == 2 and recap(out) == {"pre": "failed"}, out
    assert "pre  step 'Preflight'  failed: preflight: " in out and problem in out
    host = lab_host("pre")
    assert not CHANGING_OPS & set(host.op_log), host.op_log
    if "registered_to" not in lab:
        assert host.state.find_product(UA_PRODUCT_ID) is None


def test_the_process_server_port_is_checked_from_the_target(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = fleet(tmp_path, {"ps": None, "ok": {"lab": {"open_ports": ["10.0.0.116:9443"]}}})
    code, out = cli(capsys, "run", "-i", inventory, MOBILITY, "-e",
                    "asr_process_server=10.0.0.116")
    assert code == 2 and recap(out) == {"ps": "failed", "ok": "changed"}, out
    assert "the target cannot reach the process server on 9443 (No connection could be " \
           "made" in out


def test_a_restart_code_with_the_product_still_absent_is_a_failure_not_a_restart() -> None:
    """UnifiedAgent's 97 is FailedWithErrors: a failed MSI as well as a driver's mandatory
    restart. With the product absent, the step fails rather than restarting a server."""
    from kit import apply_on, make_host

    from pushinstall.resources import package

    host = make_host("r97")
    args = {"path": "C:\\Windows\\System32\\cmd.exe", "arguments": ["/c", "exit", "97"],
            "product_id": UA_PRODUCT_ID, "messages": "asr_unified_agent",
            "return_codes": {0: "ok", 97: "reboot"}}
    applied, ctx = apply_on(package, args, host)
    assert applied.failed and not applied.reboot
    assert applied.message.endswith("but the product is not installed: failed")
    assert ctx.sent == ["run_process", "facts"]


def test_a_nightly_check_reports_a_pending_restart_as_a_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = fleet(tmp_path, {"wu": {"lab": {"registered_to": "10.0.0.115"}}})
    code, out = cli(capsys, "run", "-i", inventory, MOBILITY)
    assert code == 0, out
    lab_host("wu").state.set_pending("windows_update")
    lab_host("wu").flush()
    code, out = cli(capsys, "check", "-i", inventory, MOBILITY, "-v")
    assert code == 0 and recap(out) == {"wu": "compliant"}, out
    code, out = cli(capsys, "check", "-i", inventory, MOBILITY, "--remediate")
    assert code == 2 and "wu  step 'No pending reboot'  failed: a reboot is pending " \
        "(windows_update); restart the server during a maintenance window" in out
    assert "reboot" not in lab_host("wu").op_log        # --remediate restarted nothing
