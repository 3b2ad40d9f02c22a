"""Ctrl-C in the middle of a real run: exit 130, and the JUnit report is not green."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import warm
from cli_kit import PLAYBOOK, REPO, write_inventory


def test_ctrl_c_gives_130_and_a_junit_with_errors(tmp_path: Path, state_dir: Path) -> None:
    inventory = write_inventory(tmp_path / "inv", {"h-slow": "installer_seconds: 5",
                                                   "h-two": "installer_seconds: 5"})
    reports = tmp_path / "reports"
    process = warm.Popen(
        ["run", "-i", str(inventory), str(PLAYBOOK),
         "--report-dir", str(reports), "-f", "1"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PUSHINSTALL_STATE_DIR": str(state_dir)})
    try:
        # wait until the first host is inside its slow installer step
        while True:
            assert process.poll() is None, process.communicate()
            logs = list((state_dir / "runs").glob("*.jsonl"))
            lines = logs[0].read_text().splitlines() if logs else []
            if any(json.loads(line).get("step") == "Install Mobility service"
                   and json.loads(line)["kind"] == "step_started" for line in lines):
                break
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, out + err
    suites = ET.parse(reports / "latest.xml").getroot()
    assert int(suites.get("errors")) >= 1
    run_case = [c for c in suites.iter("testcase") if c.get("name") == "run completed"]
    assert run_case and run_case[0].find("error") is not None
    report = json.loads((reports / "latest.json").read_text())
    assert report["interrupted"] is True and report["exit_code"] == 130
    assert "interrupted" in (reports / "latest.html").read_text()
