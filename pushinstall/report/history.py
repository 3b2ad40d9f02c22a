"""The history database: every run, host and step result in SQLite, in the state dir.

Lets a nightly `check` answer "since when has this host drifted?" and lets `--limit @failed`
style tooling pick the hosts that failed last time.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from pushinstall.report.collect import Collector

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, mode TEXT, playbook TEXT, started REAL, duration REAL,
    exit_code INTEGER, interrupted INTEGER, totals TEXT);
CREATE TABLE IF NOT EXISTS host_results (
    run_id TEXT, host TEXT, status TEXT, message TEXT, duration REAL, counts TEXT,
    PRIMARY KEY (run_id, host));
CREATE TABLE IF NOT EXISTS step_results (
    run_id TEXT, host TEXT, step TEXT, status TEXT, diff TEXT, message TEXT, duration REAL);
CREATE INDEX IF NOT EXISTS host_results_by_host ON host_results (host, run_id);
"""


def history_path(state_dir: Path) -> Path:
    """Where the history database lives under a state dir."""
    return state_dir / "history.sqlite3"


class History(Collector):
    """A sink that records the run in SQLite when it closes (one transaction)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def close(self) -> None:
        """Write the run, its hosts and their steps."""
        record = self.record
        if not record.run_id:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        finished = record.finished
        with sqlite3.connect(self.path) as db:
            db.executescript(SCHEMA)
            db.execute(
                "INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?)",
                (record.run_id, record.mode, record.playbook, record.started,
                 finished.duration if finished else None,
                 finished.exit_code if finished else None,
                 int(finished.interrupted) if finished else 1,
                 json.dumps(finished.totals if finished else {})),
            )
            for host in record.hosts.values():
                db.execute(
                    "INSERT OR REPLACE INTO host_results VALUES (?,?,?,?,?,?)",
                    (record.run_id, host.name, host.status, host.message, host.duration,
                     json.dumps(host.counts)),
                )
                db.executemany(
                    "INSERT INTO step_results VALUES (?,?,?,?,?,?,?)",
                    [(record.run_id, host.name, s.step, s.status, s.diff, s.message, s.duration)
                     for s in host.steps],
                )
        # sqlite3's context manager commits but does not close.
        db.close()


def last_status(path: Path, host: str) -> str | None:
    """The status `host` ended with in the newest recorded run, or None."""
    if not path.exists():
        return None
    with sqlite3.connect(path) as db:
        row = db.execute(
            "SELECT h.status FROM host_results h JOIN runs r USING (run_id) "
            "WHERE h.host = ? ORDER BY r.started DESC LIMIT 1", (host,),
        ).fetchone()
    db.close()
    return row[0] if row else None
