"""Reading the history database back: the runs, one host's timeline, and what drifted.

`pushinstall history`, `history --host H` and `drift` print these; the monitoring system calls
`drift`, which exits 2 when a host newly drifted since the check before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pushinstall.model import UNMET_STATUSES, Status
from pushinstall.report.history import connect, iso_time

GOOD = {Status.OK, Status.COMPLIANT, Status.CHANGED}
MOVED = UNMET_STATUSES | {Status.CHANGED}


def list_runs(path: Path, limit: int = 20) -> list[dict[str, Any]]:
    """The newest `limit` runs, newest first: when, mode, playbook, counts, exit code."""
    if not path.exists():
        return []
    with connect(path, create=False) as db:
        rows = db.execute(
            "SELECT run_id, started, mode, playbook, totals, exit_code, interrupted, duration "
            "FROM runs ORDER BY started DESC LIMIT ?", (limit,)).fetchall()
    return [{"run_id": run_id, "started": iso_time(started), "mode": mode,
             "playbook": playbook, "totals": json.loads(totals or "{}"), "exit_code": code,
             "interrupted": bool(interrupted), "duration": duration}
            for run_id, started, mode, playbook, totals, code, interrupted, duration in rows]


def host_timeline(path: Path, host: str, limit: int = 20) -> list[dict[str, Any]]:
    """`host`'s newest `limit` runs, newest first: status, message, and the steps that changed,
    drifted or failed in each."""
    if not path.exists():
        return []
    with connect(path, create=False) as db:
        rows = db.execute(
            "SELECT r.run_id, r.started, r.mode, h.status, h.message FROM host_results h "
            "JOIN runs r USING (run_id) WHERE h.host = ? ORDER BY r.started DESC LIMIT ?",
            (host, limit)).fetchall()
        out = []
        for run_id, started, mode, status, message in rows:
            steps = db.execute(
                "SELECT step, status, message FROM step_results WHERE run_id = ? AND host = ? "
                "ORDER BY rowid", (run_id, host)).fetchall()
            out.append({"run_id": run_id, "started": iso_time(started), "mode": mode,
                        "status": status, "message": message,
                        "steps": [{"step": s, "status": st, "message": m}
                                  for s, st, m in steps if st in MOVED]})
    return out


def known_hosts(path: Path) -> list[str]:
    """Every host name the history knows (for 'did you mean')."""
    if not path.exists():
        return []
    with connect(path, create=False) as db:
        return [name for (name,) in db.execute("SELECT DISTINCT host FROM host_results")]


@dataclass
class Drift:
    """How compliance moved between the two newest checks."""

    run_id: str | None = None
    previous_run_id: str | None = None
    newly_drifted: list[str] = field(default_factory=list)
    newly_fixed: list[str] = field(default_factory=list)
    newly_unreachable: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


def drift(path: Path, playbook: str | None = None) -> Drift:
    """Compare the newest check (of `playbook`, if given) with the check before it."""
    if not path.exists():
        return Drift()
    query = "SELECT run_id FROM runs WHERE mode = 'check' AND interrupted = 0"
    params: tuple[Any, ...] = ()
    if playbook:
        query, params = query + " AND playbook = ?", (playbook,)
    with connect(path, create=False) as db:
        runs = [r for (r,) in db.execute(query + " ORDER BY started DESC LIMIT 2", params)]
        if not runs:
            return Drift()
        statuses = [dict(db.execute("SELECT host, status FROM host_results WHERE run_id = ?",
                                    (run_id,))) for run_id in runs]
    now, before = statuses[0], statuses[1] if len(runs) > 1 else {}
    result = Drift(run_id=runs[0], previous_run_id=runs[1] if len(runs) > 1 else None)
    for host, status in now.items():
        old = before.get(host)
        if status in UNMET_STATUSES and old not in UNMET_STATUSES:
            result.newly_drifted.append(host)
        elif status in GOOD and old is not None and old not in GOOD:
            result.newly_fixed.append(host)
        elif status == Status.UNREACHABLE and old != Status.UNREACHABLE:
            result.newly_unreachable.append(host)
    return result
