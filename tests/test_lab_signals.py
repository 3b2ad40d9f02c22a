"""The lab's pending-reboot signals added with the C# core (docs/ops.md): each can start
raised, each reads from where the agent reads it, a restart clears it, and a reboot leaves
`boot_finished` true again (LogonUI recreated AutoLogonChecked)."""

from __future__ import annotations

from pathlib import Path

import pytest
from kit import ask

from pushinstall.lab import LabHost

DRIVER = "C:\\Windows\\System32\\drivers\\InDskFlt.sys"


def signals(host: LabHost) -> dict[str, bool]:
    fact = ask(host, "facts", queries=[{"id": "p", "kind": "pending_reboot", "sccm": True}])
    found: dict[str, bool] = fact["p"]["signals"]
    return found


@pytest.mark.parametrize("signal", ["update_exe_volatile", "domain_join"])
def test_signal_starts_raised_and_a_restart_clears_it(signal: str, state_dir: Path) -> None:
    host = LabHost("sig01", {"pending_reboot": [signal], "reboot_seconds": 0}, state_dir)
    assert signals(host)[signal] is True
    ask(host, "reboot", delay_s=0)
    assert signals(host)[signal] is False


def test_orphan_asr_driver_is_pending_until_the_restart(state_dir: Path) -> None:
    host = LabHost("sig02", {"reboot_seconds": 0}, state_dir)
    assert signals(host) == dict.fromkeys(signals(host), False)
    ask(host, "ensure_directory", path=DRIVER.rsplit("\\", 1)[0])
    host.import_file(DRIVER, b"MZ")
    assert signals(host)["asr_driver_uninstalled"] is True
    ask(host, "reboot", delay_s=0)
    assert signals(host)["asr_driver_uninstalled"] is False
    assert ask(host, "facts", queries=[{"id": "o", "kind": "os"}])["o"]["boot_finished"] is True
