"""A passphrase file never stays on a target unnoticed: the lab host's link stalls right
after `write_secret` (lab var `dark_after`), so the clean-up cannot reach it. The run warns in
every report; the next run that reaches the host removes the stale file first, even when its
playbook writes no secret at all."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import warm

ROOT = Path(__file__).parent.parent
PASSPHRASE_FILE = "passphrase.txt"


def _run(tmp_path: Path, env: dict[str, str], playbook: str) -> subprocess.CompletedProcess[str]:
    return warm.run(["run", "-i", "inv.yml", playbook, "--jsonl", "run.jsonl",
                     "--report-dir", "reports"], cwd=tmp_path, env=env, capture_output=True,
                    text=True, timeout=180)


def _on_target(state_dir: Path) -> bool:
    return any(PASSPHRASE_FILE in path.read_text(errors="replace")
               for path in (state_dir / "lab").glob("*.json"))


def test_a_stalled_secret_clean_up_warns_and_the_next_run_removes_it(
        tmp_path: Path, state_dir: Path) -> None:
    base = ("all:\n  vars:\n    transport: lab\n    cs_endpoint: 10.0.0.115\n"
            "    asr_passphrase: {env: H13_PASSPHRASE}\n"
            "    asr_installer_share: \\\\labshare\\asr\n  hosts:\n    lab-stall:\n")
    (tmp_path / "inv.yml").write_text(base + "      lab: {dark_after: [write_secret]}\n")
    env = dict(os.environ, PUSHINSTALL_STATE_DIR=str(state_dir), H13_PASSPHRASE="lab-passphrase")
    done = _run(tmp_path, env, str(ROOT / "playbooks" / "asr-mobility.yml"))
    assert done.returncode in (2, 4), done.stdout + done.stderr
    assert _on_target(state_dir), "the stall left the passphrase file on the host"
    assert "lab-passphrase" not in done.stdout + done.stderr
    assert "WARNING: the secret file" in done.stdout
    report = json.loads((tmp_path / "reports" / "latest.json").read_text())
    assert "may still be on the host" in report["hosts"][0]["warnings"][0]
    assert "WARNING: the secret file" in (tmp_path / "reports" / "latest.xml").read_text()
    assert "WARNING: the secret file" in (tmp_path / "reports" / "latest.html").read_text()
    assert '"kind": "warning"' in (tmp_path / "run.jsonl").read_text()

    (tmp_path / "inv.yml").write_text(base)          # the link is healthy again
    (tmp_path / "pb.yml").write_text(
        "name: no secrets\nhosts: all\nsteps:\n"
        "  - name: staging\n    directory: {path: 'C:\\Temp\\ASR'}\n")
    done = _run(tmp_path, env, "pb.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert not _on_target(state_dir), "the next run removed the stale passphrase file"
    assert "WARNING" not in done.stdout
