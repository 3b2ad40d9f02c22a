"""What `pushinstall history` and `pushinstall drift` print, from the history database."""

from __future__ import annotations

import json

from pushinstall.errors import EXIT_HOST_FAILED, EXIT_OK, InputError
from pushinstall.paths import state_dir
from pushinstall.report.history import history_path
from pushinstall.report.timeline import drift, host_timeline, known_hosts, list_runs


def _counts(totals: dict[str, int]) -> str:
    return " ".join(f"{status}={count}" for status, count in sorted(totals.items())) or "-"


def history_lines(host: str | None, last: int, as_json: bool) -> list[str]:
    """The runs (or one host's timeline) as lines of text or one JSON document."""
    path = history_path(state_dir())
    if host:
        timeline = host_timeline(path, host, last)
        if not timeline:
            from pushinstall.inventory.limit import COMMAND_LINE
            from pushinstall.source import did_you_mean

            hint = did_you_mean(host, known_hosts(path))
            raise InputError(f"--host {host}: no run of this host is recorded{hint}",
                             COMMAND_LINE, "a host name from 'pushinstall history'")
        if as_json:
            return [json.dumps({"host": host, "runs": timeline}, indent=2)]
        lines = []
        for entry in timeline:
            text = f"{entry['started']}  {entry['run_id']}  {entry['mode']:<5}  {entry['status']}"
            lines.append(text + (f": {entry['message']}" if entry["message"] else ""))
            lines += [f"    {s['status']:<8} {s['step']}" + (f": {s['message']}" if s["message"]
                                                            else "") for s in entry["steps"]]
        return lines
    runs = list_runs(path, last)
    if as_json:
        return [json.dumps(runs, indent=2)]
    if not runs:
        return [f"no run recorded yet ({path})"]
    lines = [f"{'started':<20}  {'run id':<22}  {'mode':<5}  exit  counts"]
    for run in runs:
        code = "-" if run["exit_code"] is None else str(run["exit_code"])
        mark = "  (interrupted)" if run["interrupted"] else ""
        lines.append(f"{run['started']:<20}  {run['run_id']:<22}  {run['mode']:<5}  "
                     f"{code:>4}  {_counts(run['totals'])}  {run['playbook']}{mark}")
    return lines


def drift_lines(playbook: str | None, as_json: bool) -> tuple[list[str], int]:
    """What changed between the two newest checks, and the exit code: 2 if a host newly
    drifted, else 0."""
    result = drift(history_path(state_dir()), playbook)
    code = EXIT_HOST_FAILED if result.newly_drifted else EXIT_OK
    if as_json:
        return [json.dumps(result.to_dict(), indent=2)], code
    if result.run_id is None:
        return ["no check recorded yet: run 'pushinstall check' first"], code
    against = f"against {result.previous_run_id}" if result.previous_run_id else \
        "(the first check recorded)"
    lines = [f"check {result.run_id} {against}"]
    for label, hosts in (("newly drifted", result.newly_drifted),
                         ("newly fixed", result.newly_fixed),
                         ("newly unreachable", result.newly_unreachable)):
        lines.append(f"{label}: {', '.join(hosts) if hosts else 'none'}")
    return lines, code
