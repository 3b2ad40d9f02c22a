"""package, command and script applied to the real lab model (no Windows box here: the lab
host answers the op contract; its simulated UnifiedAgent.exe has the real exit codes)."""

from __future__ import annotations

from typing import Any

import pytest
from kit import apply_on, make_host, place, plan_on

from pushinstall.errors import RemoteOpFailed
from pushinstall.lab import catalog
from pushinstall.lab.host import LabHost
from pushinstall.model import Decision
from pushinstall.resources import command, package, script
from pushinstall.secret import Secret

UA = "{275197FC-14FD-4560-A5EB-38217F80CBD1}"
AGENT = "C:\\Temp\\ASR\\UnifiedAgent.exe"
PASSFILE = "C:\\Temp\\ASR\\passphrase.txt"


def install_args(passphrase: str = "lab-passphrase", **more: Any) -> dict[str, Any]:
    return {
        "path": AGENT,
        "arguments": ["/Role", "Agent", "/Silent", "/CSEndpoint", "10.0.0.115",
                      "/PassphraseFilePath", PASSFILE],
        "product_id": UA,
        "secret_file": {"path": PASSFILE, "content": Secret(passphrase)},
        "messages": "asr_unified_agent",
        **more,
    }


def with_agent(lab_host: LabHost) -> LabHost:
    # an old build: the one-step /CSEndpoint install these tests use ends at 9.48
    place(lab_host, AGENT, catalog.unified_agent(catalog.ASR_LEGACY_VERSION))
    return lab_host


def run_order(lab_host: LabHost) -> list[str]:
    return [op for op in lab_host.op_log if op in ("write_secret", "run_process", "remove_file")]


def test_package_installs_then_is_ok(host: LabHost) -> None:
    with_agent(host)
    args = install_args()
    plan = plan_on(package, args, host)
    assert plan.status == Decision.CHANGE
    assert plan.diff == f"package '{UA}': absent -> installed"
    applied, _ = apply_on(package, args, host)
    assert (applied.changed, applied.failed, applied.reboot) == (True, False, False)
    assert applied.message == "exit 0: success"
    assert run_order(host) == ["write_secret", "run_process", "remove_file"]
    assert not host.state.fs.is_file(PASSFILE)
    assert plan_on(package, args, host).status == Decision.OK


def test_package_exit_14_fails_with_the_asr_message(host: LabHost) -> None:
    with_agent(host)
    applied, _ = apply_on(package, install_args(passphrase="wrong-passphrase"), host)
    assert applied.failed and not applied.reboot
    assert applied.message == "exit 14: invalid passphrase or configuration server endpoint"
    assert "wrong-passphrase" not in repr(applied)
    # the passphrase file was there for the run and is gone after it, though it failed
    assert run_order(host) == ["write_secret", "run_process", "remove_file"]
    assert not host.state.fs.is_file(PASSFILE)


def test_package_unknown_code_without_a_message_quotes_the_output(host: LabHost) -> None:
    with_agent(host)
    args = install_args(arguments=["/Role", "Agent", "/Bogus"])
    applied, _ = apply_on(package, {**args, "messages": ""}, host)
    assert applied.failed and applied.message == "exit 2: Invalid argument: /Bogus"
    applied, _ = apply_on(package, args, host)
    assert applied.message == ("exit 2: invalid arguments (an unknown switch, or a missing or "
                               "wrong value)")
    assert applied.details["exit_code"] == 2


def test_package_3010_asks_for_a_reboot() -> None:
    lab_host = with_agent(make_host("web02", installer_exit_code=3010))
    applied, _ = apply_on(package, install_args(), lab_host)
    assert (applied.changed, applied.reboot, applied.failed) == (True, True, False)
    assert applied.message == "exit 3010: success; a restart is required"


def test_package_return_codes_are_the_playbooks() -> None:
    lab_host = with_agent(make_host("web03", installer_exit_code=98))
    applied, _ = apply_on(package, install_args(return_codes={0: "ok", 98: "ok"}), lab_host)
    assert (applied.changed, applied.reboot, applied.failed) == (True, False, False)
    lab_host = with_agent(make_host("web04", installer_exit_code=98))
    applied, _ = apply_on(package, install_args(return_codes={0: "ok"}), lab_host)
    assert applied.failed and applied.message.startswith("exit 98")


def test_secret_file_is_removed_when_the_run_itself_errors(host: LabHost) -> None:
    args = install_args(path="C:\\Temp\\ASR\\Missing.exe")
    with pytest.raises(RemoteOpFailed, match="no such executable") as raised:
        apply_on(package, args, host)
    assert "lab-passphrase" not in str(raised.value)
    assert run_order(host) == ["write_secret", "run_process", "remove_file"]
    assert not host.state.fs.is_file(PASSFILE)


def test_secret_content_never_reaches_the_op_log(host: LabHost) -> None:
    with_agent(host)
    apply_on(package, install_args(), host)
    assert "lab-passphrase" not in repr(host.calls)


def test_a_process_past_its_timeout_fails() -> None:
    lab_host = with_agent(make_host("web05", installer_seconds=5))
    applied, _ = apply_on(package, install_args(timeout=1), lab_host)
    assert applied.failed and applied.message == "timed out after 1s and was killed"
    assert not lab_host.state.fs.is_file(PASSFILE)


# ---------------------------------------------------------------- command

CMD = "C:\\Windows\\System32\\cmd.exe"


def test_command_runs_when_unguarded_and_maps_its_code(host: LabHost) -> None:
    applied, ctx = apply_on(command, {"path": CMD, "arguments": ["/c", "exit", "0"]}, host)
    assert (applied.changed, applied.failed) == (True, False)
    assert ctx.sent == ["run_process"]
    failed, _ = apply_on(command, {"path": CMD, "arguments": ["/c", "exit", "5"]}, host)
    assert failed.failed and failed.message == "exit 5"
    allowed, _ = apply_on(command, {"path": CMD, "arguments": ["/c", "exit", "5"],
                                    "return_codes": {5: "ok"}}, host)
    assert not allowed.failed


def test_command_creates_guard(host: LabHost) -> None:
    args = {"path": CMD, "arguments": ["/c", "echo", "hi"], "creates": "C:\\Temp\\done.txt"}
    assert plan_on(command, args, host).status == Decision.CHANGE
    place(host, "C:\\Temp\\done.txt", b"done")
    plan = plan_on(command, args, host)
    assert plan.status == Decision.OK and plan.reason == "'C:\\Temp\\done.txt' exists"


def test_command_unless_registry_equals() -> None:
    registered = make_host("web06", registered_to="10.0.0.115")
    fresh = make_host("web07")
    args = {"path": CMD, "arguments": ["/c", "exit", "0"], "unless": {
        "registry": {"key": "HKLM:\\SOFTWARE\\Wow6432Node\\InMage Systems\\Installed "
                            "Products\\5", "name": "AgentConfigurationStatus"},
        "equals": "Succeeded"}}
    assert plan_on(command, args, registered).status == Decision.OK
    assert plan_on(command, args, fresh).status == Decision.CHANGE


def test_command_unless_service_and_product() -> None:
    registered = make_host("web08", registered_to="10.0.0.115")
    service = {"path": CMD, "unless": {"service": "svagents", "status": "Running"}}
    product = {"path": CMD, "unless": {"product": {"product_id": UA}}}
    assert plan_on(command, service, registered).status == Decision.OK
    assert plan_on(command, product, registered).status == Decision.OK
    fresh = make_host("web09")
    assert plan_on(command, service, fresh).status == Decision.CHANGE
    assert plan_on(command, product, fresh).status == Decision.CHANGE


# ---------------------------------------------------------------- script


def test_script_test_and_set_get_parameters_as_data(host: LabHost) -> None:
    hostile = "'; Remove-Item C:\\ -Recurse #"
    args = {"test": "$Parameters.Done", "set": "Write-Output $Parameters['Name']",
            "parameters": {"Done": False, "Name": hostile}}
    plan = plan_on(script, args, host)
    assert (plan.status, plan.diff) == (Decision.CHANGE, "script test: False -> True")
    applied, _ = apply_on(script, args, host)
    assert (applied.changed, applied.failed, applied.message) == (True, False, hostile)
    assert plan_on(script, {**args, "parameters": {"Done": True}}, host).status == Decision.OK


def test_script_errors_fail(host: LabHost) -> None:
    args = {"test": "throw 'cannot tell'", "set": "throw 'set broke'"}
    plan = plan_on(script, args, host)
    assert plan.status == "fail" and "cannot tell" in plan.reason
    applied, _ = apply_on(script, args, host)
    assert applied.failed and applied.message == "script set failed: set broke"
