"""A killed run loses nothing: `pushinstall run --workers 2` over psrp (the lab's loopback
endpoint) in a process of its own (forked from a warm one: tests/warm.py), killed part-way
with SIGKILL or SIGTERM.

Afterwards a `check` in a new process says which hosts the run completed (their lab state is
what the playbook wants); every one of them must have its `host_finished` line in the run's
JSONL, and the history database must have the run. SIGTERM is handled like Ctrl-C: summary,
exit 143, hosts stopped part-way `interrupted`, the run marked interrupted.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import warm

ROOT = Path(__file__).parent.parent
ASR = str(ROOT / "playbooks" / "asr-mobility.yml")
HOSTS = 12


def _finished(jsonl: Path) -> dict[str, str]:
    if not jsonl.exists():
        return {}
    lines = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    return {e["host"]: e["status"] for e in lines if e["kind"] == "host_finished"}


def _wait_gone(pgid: int, timeout: float) -> None:
    """Wait for every process of the run's group (the workers too) to end."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.killpg(pgid, signal.SIGKILL)
    pytest.fail("the workers outlived their parent")


@pytest.mark.parametrize("kill", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_run_keeps_every_finished_host(tmp_path: Path, state_dir: Path,
                                                kill: signal.Signals) -> None:
    inventory = tmp_path / "inv.yml"
    inventory.write_text(
        "all:\n  vars:\n    transport: lab\n    lab_wire: psrp\n    cs_endpoint: 10.0.0.115\n"
        "    asr_passphrase: {env: H13_PASSPHRASE}\n"
        "    asr_installer_share: \\\\labshare\\asr\n"
        "    lab: {latency_ms: 60}\n"
        f"  hosts:\n    kill[01:{HOSTS:02d}]:\n")
    env = dict(os.environ, PUSHINSTALL_STATE_DIR=str(state_dir), H13_PASSPHRASE="lab-passphrase")
    env.pop("PUSHINSTALL_LAB_WIRE", None)
    jsonl = tmp_path / "run.jsonl"
    run = warm.Popen(["run", "-i", str(inventory), ASR, "--workers", "2",
                      "--forks", "4", "--jsonl", str(jsonl)], env=env,
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                     start_new_session=True)
    deadline = time.monotonic() + 120
    while len(_finished(jsonl)) < 2 and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run.poll() is None, "the run ended before it could be killed: " + run.stderr.read()
    run.send_signal(kill)                  # the parent only: workers must notice by themselves
    out, err = run.communicate(timeout=120)
    _wait_gone(run.pid, 60)
    assert "Traceback" not in err

    checked = warm.run(["check", "-i", str(inventory), ASR, "--workers", "1",
                        "--jsonl", str(tmp_path / "check.jsonl")], env=env,
                       capture_output=True, text=True, timeout=180)
    complete = {h for h, s in _finished(tmp_path / "check.jsonl").items() if s == "compliant"}
    finished = _finished(jsonl)
    assert complete, checked.stdout + checked.stderr
    assert complete <= set(finished), f"complete but no host_finished: {complete - set(finished)}"
    assert len(finished) < HOSTS or kill == signal.SIGTERM   # it was killed part-way

    with sqlite3.connect(state_dir / "history.sqlite3") as db:
        runs = db.execute("SELECT run_id, exit_code, interrupted FROM runs WHERE mode = 'run'"
                          ).fetchall()
        assert len(runs) == 1
        recorded = dict(db.execute("SELECT host, status FROM host_results WHERE run_id = ?",
                                   (runs[0][0],)).fetchall())
    db.close()
    if kill == signal.SIGTERM:
        assert run.returncode == 143
        assert "(interrupted)" in out and "exit 143" in out
        assert runs[0][1:] == (143, 1)
        assert "failed" not in finished.values()
        assert set(recorded) == {f"kill{n:02d}" for n in range(1, HOSTS + 1)}
    else:
        assert run.returncode == -signal.SIGKILL
        assert runs[0][2] == 1          # never finished: interrupted
        assert set(recorded) <= set(finished)
