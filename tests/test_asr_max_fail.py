"""`max_fail_percentage` without `serial` (the shipped playbook's setting): the whole fleet is
one batch, and once the share of failed hosts passes the limit no further host is launched;
the rest end `skipped`, naming why. Lab hosts in-process stand in for Windows."""

from __future__ import annotations

from pathlib import Path

from kit import ListSink, asr_playbook, lab, lab_fleet, run_on_lab

from pushinstall.model import Status


def test_the_limit_stops_launching_hosts_without_serial(tmp_path: Path) -> None:
    faults = {i: {"installer_exit_code": 14} for i in range(4)}
    fleet = lab_fleet(tmp_path, 12, faults)
    playbook = asr_playbook(tmp_path)
    assert playbook.settings.serial in (None, []) and playbook.settings.max_fail_percentage == 20
    summary, sink = run_on_lab(fleet, playbook, forks=1)
    assert isinstance(sink, ListSink)
    statuses = [summary.hosts[h.name].status for h in fleet]
    # 3 failed of 12 is 25% > 20%: nothing after the third host starts
    assert statuses[:3] == [Status.FAILED] * 3
    assert statuses[3:] == [Status.SKIPPED] * 9
    assert summary.hosts["web011"].message.startswith(
        "not started: max_fail_percentage 20% exceeded: 3 of 12")
    assert lab(fleet[-1]).op_log == []
    assert summary.exit_code == 2
