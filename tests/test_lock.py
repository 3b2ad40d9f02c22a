"""Two runs on the same inventory and playbook: the second exits 3 at once, or waits with
--wait-lock; a holder killed with SIGKILL leaves no stale lock (flock, not a pid file)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import warm
from cli_kit import PLAYBOOK, REPO, cli, write_inventory

from pushinstall.errors import EXIT_LOCKED


def start_holder(inventory: Path, state: Path) -> warm.Popen:
    """A run that holds the lock for a while (a slow installer), once its run log exists."""
    process = warm.Popen(
        ["run", "-i", str(inventory), str(PLAYBOOK)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PUSHINSTALL_STATE_DIR": str(state)})
    # the run log is opened under the lock: once it exists, the lock is held
    while not list((state / "runs").glob("*.jsonl")):
        assert process.poll() is None, process.communicate()
        time.sleep(0.1)
    return process


def test_second_run_exits_at_once_then_waits(tmp_path: Path, state_dir: Path) -> None:
    inventory = write_inventory(tmp_path, {"h-slow": "installer_seconds: 4"})
    holder = start_holder(inventory, state_dir)
    try:
        refused = cli("run", "-i", str(inventory), str(PLAYBOOK))
        assert refused.returncode == EXIT_LOCKED, refused.stdout + refused.stderr
        assert "holds the lock" in refused.stderr and f"pid {holder.pid}" in refused.stderr
        assert "Traceback" not in refused.stderr
        check = cli("check", "-i", str(inventory), str(PLAYBOOK))
        assert check.returncode == EXIT_LOCKED                   # check takes the same lock
        waited = cli("run", "-i", str(inventory), str(PLAYBOOK), "--wait-lock", "200")
        assert waited.returncode == 0, waited.stdout + waited.stderr
        assert holder.wait(timeout=120) == 0
    finally:
        holder.kill()
        holder.communicate()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path, state_dir: Path) -> None:
    inventory = write_inventory(tmp_path, {"h-slow": "installer_seconds: 30"})
    holder = start_holder(inventory, state_dir)
    os.kill(holder.pid, signal.SIGKILL)
    holder.communicate()
    after = cli("run", "-i", str(inventory), str(PLAYBOOK), "--check")
    assert after.returncode != EXIT_LOCKED, after.stderr


def test_lock_env_var_and_other_playbooks_are_not_blocked(tmp_path: Path,
                                                          state_dir: Path) -> None:
    inventory = write_inventory(tmp_path, {"h-slow": "installer_seconds: 4"})
    other = tmp_path / "other.yml"
    other.write_text(PLAYBOOK.read_text())
    holder = start_holder(inventory, state_dir)
    try:
        elsewhere = cli("run", "-i", str(inventory), str(other), "--check")
        assert elsewhere.returncode == 0, elsewhere.stderr
        waited = cli("run", "-i", str(inventory), str(PLAYBOOK),
                     env={"PUSHINSTALL_WAIT_LOCK": "200"})
        assert waited.returncode == 0, waited.stderr
    finally:
        holder.kill()
        holder.communicate()
