"""The warm fork server (tests/warm.py) gives what a cold `python -m pushinstall` gives: the
same output and exit code, the environment and working directory asked for, death by a
signal, and its own resource usage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import warm
from cli_kit import PLAYBOOK, write_inventory

ROOT = Path(__file__).parent.parent
LAB = str(ROOT / "inventories" / "lab.yml")


@pytest.mark.parametrize("args", [["inventory", "-i", LAB], ["inventory", "-i", "here.yml"],
                                  ["inventory", "-i", "nowhere.yml"], ["deploy"], ["--help"]])
def test_output_and_exit_code_are_a_cold_starts(args: list[str], tmp_path: Path) -> None:
    (tmp_path / "here.yml").write_text("all:\n  hosts:\n    only-in-the-working-dir:\n")
    cold = subprocess.run([sys.executable, "-m", "pushinstall", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)
    forked = warm.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert (forked.returncode, forked.stdout, forked.stderr) == (
        cold.returncode, cold.stdout, cold.stderr)


def test_environment_directory_and_descriptors_are_the_childs(tmp_path: Path) -> None:
    (tmp_path / "inv.yml").write_text("all:\n  hosts:\n    h1:\n")
    with open(tmp_path / "out.txt", "wb") as out:
        done = warm.Popen(["run", "-i", "inv.yml", str(PLAYBOOK)], cwd=tmp_path,
                          env={**os.environ, "PUSHINSTALL_RETRY_DELAY": "abc"}, stdout=out,
                          stderr=subprocess.STDOUT)
        assert done.wait(timeout=60) == 5
    text = (tmp_path / "out.txt").read_text()       # stderr=STDOUT: one file has it
    assert "PUSHINSTALL_RETRY_DELAY" in text and "'abc'" in text, text
    assert "PUSHINSTALL_RETRY_DELAY" not in os.environ     # the child's environment, not ours
    assert done.rusage["ru_utime"] + done.rusage["ru_stime"] > 0


def test_a_signal_ends_it_as_it_ends_a_process(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path, {"h-slow": "installer_seconds: 30"})
    with warm.Popen(["run", "-i", str(inventory), str(PLAYBOOK)], start_new_session=True,
                    stderr=subprocess.PIPE, text=True) as process:
        time.sleep(0.5)
        assert process.poll() is None, process.communicate()
        assert os.getpgid(process.pid) == process.pid       # its own session and group
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=60) == -signal.SIGKILL
