"""No secret from the inventory or the playbook appears in anything issue 11's features write:
the console (piped and verbose), the JSONL logs, every report, the history database, the lock
file, and the history, drift and inventory commands."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cli_kit import PLAYBOOK, SECRETS, cli, write_inventory


def test_no_output_holds_a_secret(tmp_path: Path, state_dir: Path) -> None:
    inventory = write_inventory(tmp_path / "inv")
    reports, jsonl = tmp_path / "reports", tmp_path / "events.jsonl"
    texts = []
    for argv in (["run", "-vvv", "--diff"], ["check", "-vv"], ["run", "--check", "-v"]):
        result = cli(*argv, "-i", str(inventory), str(PLAYBOOK), "--report-dir", str(reports),
                     "--jsonl", str(jsonl), process=True)   # every byte a process writes
        texts += [result.stdout, result.stderr]
    for argv in (["history", "--json"], ["history", "--host", "h-fail", "--json"],
                 ["drift", "--json"], ["inventory", "-i", str(inventory), "--list"],
                 ["inventory", "-i", str(inventory), "--host", "h-ok", "--json"],
                 ["inventory", "-i", str(inventory), "--graph"]):
        result = cli(*argv)
        texts += [result.stdout, result.stderr]
    files = [*reports.iterdir(), jsonl, *(state_dir / "runs").iterdir(),
             *(state_dir / "locks").iterdir()]
    texts += [path.read_text(errors="replace") for path in files]
    with sqlite3.connect(state_dir / "history.sqlite3") as db:
        texts += ["\n".join(db.iterdump())]
    db.close()
    everything = "\n".join(texts)
    assert "invalid passphrase" in everything        # the failure is there, its secret is not
    for secret in SECRETS:
        assert secret not in everything
