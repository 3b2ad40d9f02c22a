"""Issue 4's done-when, end to end through the real CLI on the shipped lab inventory and
playbook: `run` converges every lab host, a second `run` changes nothing, `check` exits 0; a
lab host's service stopped behind our back makes `check` exit 2 naming the host and the step,
and `check --remediate` puts it back. The lab host model stands in for Windows (no Windows box
here); everything else is the real program. Most runs use the in-process lab
(PUSHINSTALL_LAB_WIRE=0, no sockets); one runs in a subprocess over the default wire (PSRP over
HTTP, NTLM, message encryption, on 127.0.0.1)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import warm
from kit import recap, run_cli

from pushinstall.lab import lab_host

ROOT = Path(__file__).parent.parent
INVENTORY = str(ROOT / "inventories" / "lab.yml")
PLAYBOOK = str(ROOT / "playbooks" / "asr-mobility.yml")
LAB_HOSTS = ["lab-web01", "lab-web02", "lab-web03", "lab-sql01", "lab-app01", "lab-app02",
             "lab-app03"]
PASSPHRASE = "lab-passphrase"   # inventories/lab-secrets/passphrase.txt


def test_run_run_check_then_a_stopped_service_is_drift_and_remediate_fixes_it(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    monkeypatch.setenv("PUSHINSTALL_LAB_WIRE", "0")
    jsonl = tmp_path / "run.jsonl"
    reports = tmp_path / "reports"
    done = run_cli(["run", "-i", INVENTORY, PLAYBOOK, "--jsonl", str(jsonl),
                   "--report-dir", str(reports)], capsys)
    code, out = done.code, done.output
    assert code == 0, out
    assert recap(out) == dict.fromkeys(LAB_HOSTS, "changed")
    assert list(recap(out)) == LAB_HOSTS               # the recap is in inventory order
    assert "7 host(s): 7 changed" in out and "exit 0" in out
    assert "lab-app02  rebooted for step 'No pending reboot'" in out
    assert PASSPHRASE not in out

    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert records[0]["kind"] == "run_started" and records[-1]["kind"] == "run_finished"
    assert records[-1]["exit_code"] == 0 and records[-1]["totals"] == {"changed": 7}
    finished = {r["host"]: r["status"] for r in records if r["kind"] == "host_finished"}
    assert finished == dict.fromkeys(LAB_HOSTS, "changed")
    steps = [r for r in records if r["kind"] == "step_result" and r["host"] == "lab-web01"]
    assert len(steps) == 15
    assert PASSPHRASE not in jsonl.read_text()
    written = sorted(p.suffix for p in reports.rglob("*") if p.is_file())
    assert {".json", ".xml", ".html"} <= set(written), written
    assert all(p.stat().st_size > 0 for p in reports.rglob("*") if p.is_file())

    done = run_cli(["run", "-i", INVENTORY, PLAYBOOK], capsys)
    code, out = done.code, done.output
    assert code == 0, out
    assert recap(out) == dict.fromkeys(LAB_HOSTS, "ok")
    assert "changed=0" in out and "changed=1" not in out and "7 host(s): 7 ok" in out

    done = run_cli(["check", "-i", INVENTORY, PLAYBOOK], capsys)
    code, out = done.code, done.output
    assert code == 0, out
    assert recap(out) == dict.fromkeys(LAB_HOSTS, "compliant")

    # Someone stops the Mobility service's agent on lab-web02 (set_service, as an admin would).
    web02 = lab_host("lab-web02")
    generation = web02.generation
    answer = web02.handle({"op": "set_service", "args": {"name": "svagents", "state": "stopped"}})
    assert answer["ok"] and web02.generation == generation + 1

    done = run_cli(["check", "-i", INVENTORY, PLAYBOOK], capsys)
    code, out = done.code, done.output
    assert code == 2, out
    assert "lab-web02  step 'svagents running'  drifted" in out
    assert recap(out) == {**dict.fromkeys(LAB_HOSTS, "compliant"), "lab-web02": "drifted"}
    assert "exit 2" in out
    assert web02.generation == generation + 1      # check changed nothing

    done = run_cli(["check", "-i", INVENTORY, PLAYBOOK, "--remediate"], capsys)
    code, out = done.code, done.output
    assert code == 0, out
    assert "lab-web02  step 'svagents running'  changed" in out
    assert recap(out)["lab-web02"] == "changed"
    done = run_cli(["check", "-i", INVENTORY, PLAYBOOK], capsys)
    code, out = done.code, done.output
    assert code == 0 and recap(out) == dict.fromkeys(LAB_HOSTS, "compliant"), out


def test_run_then_check_in_a_subprocess_over_the_default_wire(state_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PUSHINSTALL_LAB_WIRE"}
    env["PUSHINSTALL_STATE_DIR"] = str(state_dir)
    limit = ["--limit", "lab-web01,lab-app03"]
    done = warm.run(["run", "-i", INVENTORY, PLAYBOOK, *limit], env=env, capture_output=True,
                    text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert recap(done.stdout) == {"lab-web01": "changed", "lab-app03": "changed"}
    # the subprocess's lab hosts persisted their state where this test's process can read it
    assert lab_host("lab-web01").generation > 0
    done = warm.run(["check", "-i", INVENTORY, PLAYBOOK, *limit], env=env, capture_output=True,
                    text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert recap(done.stdout) == {"lab-web01": "compliant", "lab-app03": "compliant"}
    assert PASSPHRASE not in done.stdout + done.stderr
