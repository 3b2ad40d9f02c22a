"""The history database: every run, host and step result in SQLite, in the state dir.

Lets a nightly `check` answer "since when has this host drifted?" and lets `--limit @failed`
style tooling pick the hosts that failed last time.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from pushinstall.events import Event, HostFinished, RunFinished, RunStarted
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
    """A sink that records the run in SQLite as it goes: the run's row when it starts (marked
    interrupted until it finishes), each host with its steps when it finishes, the totals and
    exit code at the end. A killed run keeps its row and every host recorded so far."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._db: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            # A commit per host: WAL + NORMAL makes that cheap and still crash-safe.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        return self._db

    def emit(self, event: Event) -> None:
        """Fold the event into the record; write the run's row or a finished host."""
        super().emit(event)
        if isinstance(event, RunStarted | RunFinished):
            with self._connect() as db:
                self._write_run(db)
        elif isinstance(event, HostFinished) and self.record.run_id:
            with self._connect() as db:
                self._write_host(db, event.host)

    def _write_run(self, db: sqlite3.Connection) -> None:
        record, finished = self.record, self.record.finished
        db.execute(
            "INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?)",
            (record.run_id, record.mode, record.playbook, record.started,
             finished.duration if finished else None,
             finished.exit_code if finished else None,
             int(finished.interrupted) if finished else 1,
             json.dumps(finished.totals if finished else {})),
        )

    def _write_host(self, db: sqlite3.Connection, name: str) -> None:
        record, host = self.record, self.record.host(name)
        db.execute(
            "INSERT OR REPLACE INTO host_results VALUES (?,?,?,?,?,?)",
            (record.run_id, host.name, host.status, host.message, host.duration,
             json.dumps(host.counts)),
        )
        db.execute("DELETE FROM step_results WHERE run_id = ? AND host = ?",
                   (record.run_id, host.name))
        db.executemany(
            "INSERT INTO step_results VALUES (?,?,?,?,?,?,?)",
            [(record.run_id, host.name, s.step, s.status, s.diff, s.message, s.duration)
             for s in host.steps],
        )

    def close(self) -> None:
        """Close the database (the run's row was written with RunFinished)."""
        if self._db is not None:
            self._db.close()
            self._db = None


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
