"""Issue 10's done-when for the shipped ASR playbooks, through the CLI over the lab's real PSRP
wire: each asr_mode converges a fresh fleet, an installed-but-unregistered host only registers,
an older build upgrades with its registration kept, the uninstall leaves no product and takes
the driver's restart, and registered-CS drift shows in `check`. The lab host model stands in for
Windows (no Windows box here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from asr_kit import MOBILITY, UNINSTALL, UPGRADE, cli, fleet, recap

from pushinstall.lab import catalog, lab_host
from pushinstall.lab.products import UA_PRODUCT_ID, installed_ua, registered_cs


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "source-config.json"
    path.write_text(json.dumps({"ApplianceName": "lab-appliance", "CSType": "CSPrime"}),
                    encoding="utf-8")
    return path


@pytest.mark.parametrize("mode", ["classic", "modernized", "legacy"])
def test_each_generation_converges_a_fresh_fleet(
        mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    extra: dict[str, object] = {"asr_mode": mode}
    if mode == "modernized":
        extra["asr_source_config"] = {"file": str(_config(tmp_path))}
    if mode == "legacy":
        extra.update(asr_bundle=catalog.ASR_LEGACY_BUNDLE,
                     asr_version=catalog.ASR_LEGACY_VERSION,
                     asr_bundle_sha256=catalog.sha256_of(catalog.ASR_LEGACY_BUNDLE))
    inventory = fleet(tmp_path, {"m1": None, "m2": {"lab": {"os": "2022"}}}, **extra)
    code, out = cli(capsys, "run", "-i", inventory, MOBILITY)
    assert code == 0, out
    assert recap(out) == {"m1": "changed", "m2": "changed"}
    code, out = cli(capsys, "run", "-i", inventory, MOBILITY)
    assert code == 0 and recap(out) == {"m1": "ok", "m2": "ok"}, out
    code, out = cli(capsys, "check", "-i", inventory, MOBILITY)
    assert code == 0 and recap(out) == {"m1": "compliant", "m2": "compliant"}, out
    state = lab_host("m1").state
    wanted = catalog.ASR_LEGACY_VERSION if mode == "legacy" else catalog.ASR_VERSION
    assert installed_ua(state) is not None and installed_ua(state)[0] == wanted  # type: ignore[index]
    assert registered_cs(state) == "10.0.0.115"
    # the bundled VM agent stays stopped and disabled on-premises, and nothing fights it
    guest = state.find_service("WindowsAzureGuestAgent")
    assert guest is not None and guest["status"] == "Stopped"
    assert state.start_mode("WindowsAzureGuestAgent") == "Disabled"
    assert state.start_mode("svagents") == "AutomaticDelayed"


def test_installed_but_unregistered_host_only_registers(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = fleet(tmp_path, {"half": {"lab": {"installed_version": catalog.ASR_VERSION}}})
    code, out = cli(capsys, "run", "-i", inventory, MOBILITY)
    assert code == 0, out
    assert "half  step 'Install Mobility service'  changed" not in out
    assert "half  step 'Register with the configuration server'  changed" in out
    assert registered_cs(lab_host("half").state) == "10.0.0.115"


def test_an_older_build_upgrades_and_keeps_its_registration(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = fleet(tmp_path, {"old": {"lab": {
        "installed_version": catalog.ASR_PREVIOUS_VERSION, "registered_to": "10.0.0.115"}}})
    code, out = cli(capsys, "run", "-i", inventory, UPGRADE)
    assert code == 0, out
    assert "old  step 'Upgrade Mobility service'  changed" in out
    state = lab_host("old").state
    assert installed_ua(state)[0] == catalog.ASR_VERSION  # type: ignore[index]
    assert registered_cs(state) == "10.0.0.115"
    code, out = cli(capsys, "run", "-i", inventory, UPGRADE)
    assert code == 0 and recap(out) == {"old": "ok"}, out


def test_a_newer_build_than_the_pin_is_left_alone(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = fleet(tmp_path, {"new": {"lab": {"installed_version": "9.63.7300.1",
                                                 "registered_to": "10.0.0.115"}}})
    code, out = cli(capsys, "run", "-i", inventory, MOBILITY)
    assert code == 0 and recap(out) == {"new": "changed"}, out     # staging only
    assert "new  step 'Install Mobility service'" not in out         # ok: no downgrade (15)
    assert installed_ua(lab_host("new").state)[0] == "9.63.7300.1"  # type: ignore[index]


def test_uninstall_leaves_no_product_and_takes_the_driver_restart(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = fleet(tmp_path, {"gone": {"lab": {"registered_to": "10.0.0.115",
                                                  "reboot_seconds": 0}}})
    code, out = cli(capsys, "run", "-i", inventory, UNINSTALL)
    assert code == 0, out
    assert "gone  step 'Uninstall Mobility service'  changed: exit 3010" in out
    assert "gone  rebooted for step 'Uninstall Mobility service'" in out
    state = lab_host("gone").state
    assert state.find_product(UA_PRODUCT_ID) is None
    assert not any(state.pending_signals().values())
    log = state.fs.read("C:\\ProgramData\\ASRSetupLogs\\UnifiedAgentMSIUninstall.log")
    assert b"Removed" in log
    code, out = cli(capsys, "run", "-i", inventory, UNINSTALL)
    assert code == 0 and recap(out) == {"gone": "ok"}, out


def test_check_reports_a_host_registered_to_another_cs_as_drift(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = fleet(tmp_path, {"reg": {"lab": {"registered_to": "10.0.0.115",
                                                 "installed_version": catalog.ASR_VERSION}}})
    code, out = cli(capsys, "run", "-i", inventory, MOBILITY)
    assert code == 0, out
    code, out = cli(capsys, "check", "-i", inventory, MOBILITY, "-e", "cs_endpoint=10.0.0.200")
    assert code == 2 and recap(out) == {"reg": "drifted"}, out
    assert "registered to 10.0.0.115, not 10.0.0.200" in out
    assert "reg  step 'Register with the configuration server'  drifted" in out


def test_a_mistyped_asr_mode_is_bad_input(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    inventory = fleet(tmp_path, {"typo": None})
    code, out = cli(capsys, "run", "-i", inventory, MOBILITY, "-e", "asr_mode=clasic")
    assert code == 5, out
    assert "asr-mobility.yml:" in out and "'mode' of 'preflight' is 'clasic'; did you mean " \
        "'classic'?" in out and "Traceback" not in out
