"""Text from a target never reaches a terminal or a report raw: a lab host (over psrp) answers
a script step with ANSI escapes, a bell, NUL, a bidi override and a lone surrogate in its
error; the console, the JSONL log, the JSON report, the JUnit XML (which must stay valid XML),
the HTML report and the history show them escaped."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

HOSTILE = "\x1b[2J\x1b]0;pwned\x07\x00\u202edesrever\x9b"


def test_control_characters_from_a_target_are_escaped_in_every_report(
        tmp_path: Path, state_dir: Path) -> None:
    (tmp_path / "inv.yml").write_text("all:\n  vars: {transport: lab}\n  hosts:\n    lab-ctl:\n")
    (tmp_path / "pb.yml").write_text(json.dumps({
        "name": "hostile output", "hosts": "all",
        "steps": [{"name": "echo", "script": {"set": "Write-Error $Parameters.text",
                                              "parameters": {"text": HOSTILE}}}],
    }))
    env = dict(os.environ, PUSHINSTALL_STATE_DIR=str(state_dir))
    done = subprocess.run(
        [sys.executable, "-m", "pushinstall", "run", "-i", "inv.yml", "pb.yml",
         "--jsonl", "run.jsonl", "--report-dir", "reports"], cwd=tmp_path, env=env,
        capture_output=True, timeout=120, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    shown = "\\x1b[2J\\x1b]0;pwned\\x07\\x00\\u202edesrever\\x9b"
    outputs = {
        "console": done.stdout.decode(),
        "jsonl": (tmp_path / "run.jsonl").read_text(),
        "json": (tmp_path / "reports" / "latest.json").read_text(),
        "junit": (tmp_path / "reports" / "latest.xml").read_text(),
        "html": (tmp_path / "reports" / "latest.html").read_text(),
    }
    with sqlite3.connect(state_dir / "history.sqlite3") as db:
        outputs["history"] = "\n".join(row[0] for row in db.execute(
            "SELECT message FROM step_results UNION ALL SELECT message FROM host_results"))
    db.close()
    for name, text in outputs.items():
        for raw in ("\x1b", "\x07", "\x00", "\u202e", "\x9b"):
            assert raw not in text, f"{name} holds {raw!r}"
    assert shown in outputs["console"]
    assert shown in outputs["history"]
    assert shown.replace("\\", "\\\\") in outputs["jsonl"]   # JSON escapes the backslash
    ET.fromstring(outputs["junit"])                          # valid XML
