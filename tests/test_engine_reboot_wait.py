"""The wait for a rebooted host, over the real PSRP wire to a lab host: each probe gets a real
timeout, so a host that came back late in the wait is never reported as not come back.

Before, the probe's timeout was what was left of the wait: with 1.5 s per op on the wire and a
1 s reboot timeout every probe timed out and the host ended "did not come back"."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

INVENTORY = """\
all:
  vars: {transport: lab, username: LAB\\Administrator, password: {env: LAB_PW}}
  hosts:
    slow01: {lab: {reboot_seconds: 0.5, latency_ms: 1500}}
"""
PLAYBOOK = """\
name: restart
hosts: all
settings: {retries: 0, reboot: {mode: if_needed, timeout: 1}}
steps:
  - name: Restart
    reboot: {}
"""


def test_a_host_back_late_in_the_wait_is_not_reported_as_gone(tmp_path: Path,
                                                             state_dir: Path) -> None:
    (tmp_path / "inv.yml").write_text(INVENTORY, encoding="utf-8")
    (tmp_path / "pb.yml").write_text(PLAYBOOK, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PUSHINSTALL_LAB_WIRE"}
    env.update(LAB_PW="pw-Lab-123", PUSHINSTALL_STATE_DIR=str(state_dir))
    done = subprocess.run(
        [sys.executable, "-m", "pushinstall", "run", "-i", str(tmp_path / "inv.yml"),
         str(tmp_path / "pb.yml")], env=env, capture_output=True, text=True, timeout=120,
        check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rebooted for step 'Restart'" in done.stdout
    assert "did not come back" not in done.stdout
