"""The history database: every run, host and step result in SQLite, in the state dir.

Lets a nightly `check` answer "since when has this host drifted?" (`pushinstall history --host`,
`pushinstall drift`) and `--limit @failed` pick the hosts that failed last time.

Schema (`PRAGMA user_version` counts the migrations applied; each step in `MIGRATIONS` runs once,
in order, in its own transaction; every statement names its columns, so a later step may add
columns without breaking an older reader):

    runs(run_id PK, mode, playbook, started, duration, exit_code, interrupted, totals JSON,
         options JSON, host_count)                                         options/host_count: v2
    host_results(run_id, host, status, message, duration, counts JSON, groups JSON)  groups: v2
    step_results(run_id, host, step, status, diff, message, duration, log_tail JSON) log_tail: v2

Two processes may write at once: WAL journal, and a busy timeout long enough to wait out the
other's transaction instead of failing.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pushinstall.events import Event, HostFinished, RunFinished, RunStarted
from pushinstall.report.collect import Collector

BUSY_TIMEOUT_S = 30.0

MIGRATIONS: tuple[str, ...] = (
    # 1: the tables as pushinstall wrote them before versioning (IF NOT EXISTS adopts those)
    """
    CREATE TABLE IF NOT EXISTS runs (
        run_id TEXT PRIMARY KEY, mode TEXT, playbook TEXT, started REAL, duration REAL,
        exit_code INTEGER, interrupted INTEGER, totals TEXT);
    CREATE TABLE IF NOT EXISTS host_results (
        run_id TEXT, host TEXT, status TEXT, message TEXT, duration REAL, counts TEXT,
        PRIMARY KEY (run_id, host));
    CREATE TABLE IF NOT EXISTS step_results (
        run_id TEXT, host TEXT, step TEXT, status TEXT, diff TEXT, message TEXT, duration REAL);
    CREATE INDEX IF NOT EXISTS host_results_by_host ON host_results (host, run_id);
    """,
    # 2: what the reports and the history commands show
    """
    ALTER TABLE runs ADD COLUMN options TEXT;
    ALTER TABLE runs ADD COLUMN host_count INTEGER;
    ALTER TABLE host_results ADD COLUMN groups TEXT;
    ALTER TABLE step_results ADD COLUMN log_tail TEXT;
    CREATE INDEX IF NOT EXISTS runs_by_start ON runs (started);
    CREATE INDEX IF NOT EXISTS step_results_by_run ON step_results (run_id, host);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def history_path(state_dir: Path) -> Path:
    """Where the history database lives under a state dir."""
    return state_dir / "history.sqlite3"


def _migrate(db: sqlite3.Connection) -> None:
    """Apply the migrations this database has not had yet; a newer database is refused."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(
            f"history schema {version} is newer than this pushinstall knows ({SCHEMA_VERSION})")
    for number in range(version, SCHEMA_VERSION):
        # BEGIN IMMEDIATE: two processes opening a fresh database must not both migrate it
        db.execute("BEGIN IMMEDIATE")
        if db.execute("PRAGMA user_version").fetchone()[0] != number:
            db.execute("ROLLBACK")
            continue
        for statement in MIGRATIONS[number].split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {number + 1}")
        db.execute("COMMIT")


@contextmanager
def connect(path: Path, create: bool = True) -> Iterator[sqlite3.Connection]:
    """A migrated connection in WAL mode with a busy timeout; closed on exit."""
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        _migrate(db)
        yield db
    finally:
        db.close()


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
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                 check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            # a commit per host: WAL + NORMAL makes that cheap and still crash-safe
            db.execute("PRAGMA synchronous=NORMAL")
            _migrate(db)
            self._db = db
        return self._db

    def emit(self, event: Event) -> None:
        """Fold the event into the record; write the run's row or a finished host."""
        super().emit(event)
        if isinstance(event, RunStarted | RunFinished):
            self._write(self._write_run)
        elif isinstance(event, HostFinished) and self.record.run_id:
            self._write(lambda db: self._write_host(db, event.host))

    def _write(self, write: Callable[[sqlite3.Connection], None]) -> None:
        db = self._connect()
        db.execute("BEGIN IMMEDIATE")
        try:
            write(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _write_run(self, db: sqlite3.Connection) -> None:
        record, finished = self.record, self.record.finished
        db.execute(
            "INSERT OR REPLACE INTO runs (run_id, mode, playbook, started, duration, "
            "exit_code, interrupted, totals, options, host_count) "
            "VALUES (?,?,?,?,?,?,?,?,?,?)",
            (record.run_id, record.mode, record.playbook, record.started,
             finished.duration if finished else None,
             finished.exit_code if finished else None,
             int(finished.interrupted) if finished else 1,
             json.dumps(finished.totals if finished else {}),
             json.dumps(record.options, default=str), len(record.hosts)),
        )

    def _write_host(self, db: sqlite3.Connection, name: str) -> None:
        record, host = self.record, self.record.host(name)
        db.execute(
            "INSERT OR REPLACE INTO host_results (run_id, host, status, message, duration, "
            "counts, groups) VALUES (?,?,?,?,?,?,?)",
            (record.run_id, host.name, host.status, host.message, host.duration,
             json.dumps(host.counts), json.dumps(host.groups)),
        )
        db.execute("DELETE FROM step_results WHERE run_id = ? AND host = ?",
                   (record.run_id, host.name))
        db.executemany(
            "INSERT INTO step_results (run_id, host, step, status, diff, message, duration, "
            "log_tail) VALUES (?,?,?,?,?,?,?,?)",
            [(record.run_id, host.name, s.step, s.status, s.diff, s.message, s.duration,
              json.dumps(s.log_tail)) for s in host.steps],
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
    with connect(path, create=False) as db:
        row = db.execute(
            "SELECT h.status FROM host_results h JOIN runs r USING (run_id) "
            "WHERE h.host = ? ORDER BY r.started DESC LIMIT 1", (host,),
        ).fetchone()
    return row[0] if row else None


def host_pasts(path: Path, hosts: list[str], limit: int) -> dict[str, list[dict[str, str]]]:
    """Each host's last `limit` recorded runs, oldest first: run_id, started (ISO), status."""
    if not path.exists():
        return {}
    out: dict[str, list[dict[str, str]]] = {}
    with connect(path, create=False) as db:
        for host in hosts:
            rows = db.execute(
                "SELECT r.run_id, r.started, h.status FROM host_results h JOIN runs r "
                "USING (run_id) WHERE h.host = ? ORDER BY r.started DESC LIMIT ?",
                (host, limit)).fetchall()
            out[host] = [{"run_id": run_id, "started": iso_time(started), "status": status}
                         for run_id, started, status in reversed(rows)]
    return out


def iso_time(epoch: float | None) -> str:
    """`2026-12-01T02:00:13Z`, or '' for no time."""
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)) if epoch else ""


# Which runs a `--limit @STATUS` reads: the newest whose mode can end a host so. A `failed`
# worth re-running is an apply's (a nightly check must not hide last night's failed
# installs); drift is what a check finds; any run can find a host unreachable.
LAST_RUN_KINDS = {"failed": "a run that applied changes (run or install, not --check)",
                  "drifted": "a check (check, or run --check)",
                  "unreachable": "a run of any mode"}


@dataclass(frozen=True)
class PickedRun:
    """The run a `--limit @STATUS` read, and its hosts that ended with that status."""

    run_id: str
    mode: str
    started: float
    hosts: list[str]


def _is_check(mode: str, options: str | None) -> bool:
    try:
        check_mode = bool(json.loads(options or "{}").get("check_mode"))
    except (ValueError, AttributeError):
        check_mode = False
    return mode == "check" or check_mode


def _can_end_so(status: str, mode: str, options: str | None) -> bool:
    if status == "failed":
        return not _is_check(mode, options)
    if status == "drifted":
        return _is_check(mode, options)
    return True


def last_run_hosts(path: Path, status: str) -> PickedRun | None:
    """The newest recorded run whose mode can end a host with `status` (`LAST_RUN_KINDS`)
    and its hosts that ended so (inventory order); None when no such run is recorded."""
    if not path.exists():
        return None
    with connect(path, create=False) as db:
        rows = db.execute("SELECT run_id, mode, started, options FROM runs "
                          "ORDER BY started DESC")
        picked = next((row for row in rows if _can_end_so(status, row[1], row[3])), None)
        if picked is None:
            return None
        names = [name for (name,) in db.execute(
            "SELECT host FROM host_results WHERE run_id = ? AND status = ? ORDER BY rowid",
            (picked[0], status))]
    run_id, mode, started, options = picked
    if mode != "check" and _is_check(mode, options):
        mode = f"{mode} --check"
    return PickedRun(run_id, mode, started or 0.0, names)
