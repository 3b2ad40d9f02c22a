"""history, history --host, drift, --limit @failed and --keep-runs, through the real CLI."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from pathlib import Path

from cli_kit import PLAYBOOK, SECRETS, cli, write_inventory

from pushinstall.events import HostFinished, RunFinished, RunStarted, StepResult
from pushinstall.report.history import SCHEMA_VERSION, History, history_path


def test_history_and_host_timeline(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path)
    assert cli("run", "-i", str(inventory), str(PLAYBOOK)).returncode == 2
    assert cli("check", "-i", str(inventory), str(PLAYBOOK)).returncode == 2
    listing = cli("history")
    assert listing.returncode == 0
    lines = listing.stdout.splitlines()
    assert len(lines) == 3 and " check " in lines[1] and " run " in lines[2]
    assert "changed=1 failed=1 unreachable=1" in lines[2]
    runs = json.loads(cli("history", "--json").stdout)
    assert [r["mode"] for r in runs] == ["check", "run"] and runs[1]["exit_code"] == 2
    timeline = cli("history", "--host", "h-fail").stdout
    assert "run    failed" in timeline and "invalid passphrase" in timeline
    assert "check  drifted" in timeline
    missing = cli("history", "--host", "h-fial")
    assert missing.returncode == 5 and "did you mean 'h-fail'" in missing.stderr
    everything = listing.stdout + timeline + cli("history", "--host", "h-ok").stdout
    assert not any(secret in everything for secret in SECRETS)


def test_drift_newly_drifted_then_newly_fixed(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path, {"h-a": "", "h-b": ""})
    assert cli("drift").returncode == 0                  # nothing recorded yet
    assert cli("run", "-i", str(inventory), str(PLAYBOOK)).returncode == 0
    assert cli("check", "-i", str(inventory), str(PLAYBOOK)).returncode == 0
    assert cli("lab", "reset", "--host", "h-b").returncode == 0   # h-b loses everything
    assert cli("check", "-i", str(inventory), str(PLAYBOOK)).returncode == 2
    drifted = cli("drift")
    assert drifted.returncode == 2, drifted.stdout
    assert "newly drifted: h-b" in drifted.stdout and "newly fixed: none" in drifted.stdout
    assert cli("check", "-i", str(inventory), str(PLAYBOOK), "--remediate").returncode == 0
    fixed = json.loads(cli("drift", "--json").stdout)
    assert fixed["newly_fixed"] == ["h-b"] and fixed["newly_drifted"] == []
    assert cli("drift").returncode == 0
    assert cli("check", "-i", str(inventory), str(PLAYBOOK)).returncode == 0
    steady = json.loads(cli("drift", "--json").stdout)
    assert steady["newly_fixed"] == steady["newly_drifted"] == []


def test_limit_last_run_failed_and_a_file_that_wins(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path)
    assert cli("run", "-i", str(inventory), str(PLAYBOOK)).returncode == 2
    again = cli("run", "-i", str(inventory), str(PLAYBOOK), "-l", "@failed", "--check")
    assert "on 1 host(s)" in again.stdout and "h-fail" in again.stdout, again.stderr
    assert "1 failed host(s) of run" in again.stderr
    # the last run is now that one, which had only h-fail
    unreachable = cli("run", "-i", str(inventory), str(PLAYBOOK), "-l", "@unreachable")
    assert unreachable.returncode == 5 and "had no unreachable host" in unreachable.stderr
    (tmp_path / "failed").write_text("h-ok\n")
    by_file = cli("run", "-i", str(inventory), str(PLAYBOOK), "-l", "@failed", "--check",
                  cwd=tmp_path)
    assert "reads the file ./failed" in by_file.stderr
    assert "on 1 host(s)" in by_file.stdout and "h-ok" in by_file.stdout


def test_limit_reads_the_newest_run_whose_mode_can_end_a_host_so(tmp_path: Path) -> None:
    """@failed: the newest apply (a nightly check in between must not hide last night's failed
    install); @drifted: the newest check; @unreachable: the newest run of any mode. The note
    names the run picked by id, mode and time."""
    inventory = write_inventory(tmp_path)
    assert cli("run", "-i", str(inventory), str(PLAYBOOK)).returncode == 2
    applied = json.loads(cli("history", "--json").stdout)[0]
    no_check = cli("run", "-i", str(inventory), str(PLAYBOOK), "-l", "@drifted", "--check")
    assert no_check.returncode == 5
    assert no_check.stderr == ("<command line>:1:1: --limit @drifted: no run is recorded yet "
                               "that can find drifted hosts: @drifted reads a check (check, or "
                               "run --check) (such a run before it, or a host pattern)\n")

    assert cli("check", "-i", str(inventory), str(PLAYBOOK)).returncode == 2   # cron, 02:00
    checked = json.loads(cli("history", "--json").stdout)[0]
    assert checked["mode"] == "check" and checked["run_id"] != applied["run_id"]

    again = cli("run", "-i", str(inventory), str(PLAYBOOK), "-l", "@failed", "--check")
    assert "on 1 host(s)" in again.stdout and "h-fail" in again.stdout, again.stderr
    assert (f"note: --limit @failed: 1 failed host(s) of run {applied['run_id']} (run, "
            f"{applied['started']}), the newest a run that applied changes (run or install, "
            "not --check)\n") in again.stderr
    # that dry run (recorded as a check) applied nothing, and is now the newest check
    dry_run = json.loads(cli("history", "--json").stdout)[0]
    assert dry_run["mode"] == "check"
    drifted = cli("run", "-i", str(inventory), str(PLAYBOOK), "-l", "@drifted", "--check")
    assert f"of run {dry_run['run_id']} (check, {dry_run['started']})" in drifted.stderr
    # any run can find a host unreachable: the newest, that dry run of h-fail alone, had none
    unreachable = cli("run", "-i", str(inventory), str(PLAYBOOK), "-l", "@unreachable")
    newest = json.loads(cli("history", "--json").stdout)[0]
    assert unreachable.returncode == 5
    assert (f"run {newest['run_id']} (check, {newest['started']}) had no unreachable host"
            in unreachable.stderr), unreachable.stderr


def test_limit_at_failed_without_history_is_invalid_input(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path)
    result = cli("run", "-i", str(inventory), str(PLAYBOOK), "-l", "@failed")
    assert result.returncode == 5
    assert result.stderr.startswith("<command line>:1:1: --limit @failed: no run is recorded")


def test_keep_runs_prunes_old_logs(tmp_path: Path, state_dir: Path) -> None:
    inventory = write_inventory(tmp_path, {"h-ok": ""})
    for _ in range(3):
        cli("run", "-i", str(inventory), str(PLAYBOOK), "--check", "--keep-runs", "2")
    assert len(list((state_dir / "runs").glob("*.jsonl"))) == 2
    cli("run", "-i", str(inventory), str(PLAYBOOK), "--check",
        env={"PUSHINSTALL_KEEP_RUNS": "1"})
    assert len(list((state_dir / "runs").glob("*.jsonl"))) == 1


def _write_runs(path: str, prefix: str) -> None:
    for number in range(15):
        sink = History(Path(path))
        run_id = f"{prefix}-{number:02d}"
        sink.emit(RunStarted(run_id=run_id, mode="check", playbook="p.yml", hosts=["a", "b"]))
        for host in ("a", "b"):
            sink.emit(StepResult(host=host, step="s", status="ok"))
            sink.emit(HostFinished(host=host, status="compliant"))
        sink.emit(RunFinished(run_id=run_id))
        sink.close()


def test_two_writers_at_once_never_corrupt_the_history(state_dir: Path) -> None:
    path = history_path(state_dir)
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_write_runs, args=(str(path), name))
               for name in ("one", "two")]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
        assert writer.exitcode == 0
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 30
        assert db.execute("SELECT count(*) FROM step_results").fetchone()[0] == 60
    db.close()


def test_an_old_unversioned_history_is_migrated(state_dir: Path) -> None:
    path = history_path(state_dir)
    with sqlite3.connect(path) as db:   # the tables as pushinstall wrote them before versions
        db.executescript(
            "CREATE TABLE runs (run_id TEXT PRIMARY KEY, mode TEXT, playbook TEXT, started REAL,"
            " duration REAL, exit_code INTEGER, interrupted INTEGER, totals TEXT);"
            "CREATE TABLE host_results (run_id TEXT, host TEXT, status TEXT, message TEXT,"
            " duration REAL, counts TEXT, PRIMARY KEY (run_id, host));"
            "CREATE TABLE step_results (run_id TEXT, host TEXT, step TEXT, status TEXT,"
            " diff TEXT, message TEXT, duration REAL);"
            "INSERT INTO runs VALUES ('old', 'run', 'p.yml', 1.0, 2.0, 0, 0, '{\"ok\": 1}');"
            "INSERT INTO host_results VALUES ('old', 'h', 'ok', '', 1.0, '{}');")
    db.close()
    listing = cli("history")
    assert listing.returncode == 0 and " old " in listing.stdout.replace("old  ", " old ")
    _write_runs(str(path), "new")
    assert "new-14" in cli("history", "-n", "1").stdout
