"""The wait for a rebooted host, over the real PSRP wire to a lab host: each probe gets a real
timeout, so a host that came back late in the wait is never reported as not come back.

Before, the probe's timeout was what was left of the wait: with 1.5 s per op on the wire (1.2 s
here: above the 1 s, the least a reboot timeout may be, is what matters) and a 1 s reboot
timeout every probe timed out and the host ended "did not come back"."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_kit import cli

INVENTORY = """\
all:
  vars: {transport: lab, username: LAB\\Administrator, password: {env: LAB_PW}}
  hosts:
    slow01: {lab: {reboot_seconds: 0.2, latency_ms: 1200}}
"""
PLAYBOOK = """\
name: restart
hosts: all
settings: {retries: 0, reboot: {mode: if_needed, timeout: 1}}
steps:
  - name: Restart
    reboot: {}
"""


def test_a_host_back_late_in_the_wait_is_not_reported_as_gone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "inv.yml").write_text(INVENTORY, encoding="utf-8")
    (tmp_path / "pb.yml").write_text(PLAYBOOK, encoding="utf-8")
    monkeypatch.delenv("PUSHINSTALL_LAB_WIRE", raising=False)    # the real PSRP wire
    done = cli("run", "-i", str(tmp_path / "inv.yml"), str(tmp_path / "pb.yml"),
               env={"LAB_PW": "pw-Lab-123"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rebooted for step 'Restart'" in done.stdout
    assert "did not come back" not in done.stdout
