"""The HTML report: one self-contained page (no external asset, no network) from a Jinja2
template with autoescape, so a host name, a message or a log line can never become markup.

A fleet summary with an inline SVG chart of hosts by status; a host table, failed hosts first,
sortable and filterable by status, group and text (the view is kept in the address, e.g.
`report.html#status=failed&sort=-duration`); each failed step's error, diff and log tail shown
under its host; and a strip of the host's statuses over its last runs from the history.
"""

from __future__ import annotations

import time
from importlib import resources
from typing import Any

import jinja2

from pushinstall.model import UNMET_STATUSES
from pushinstall.report.collect import HostRecord, RunRecord

RANK = {"failed": 0, "unreachable": 1, "drifted": 2, "interrupted": 3, "reboot_pending": 4,
        "changed": 5, "skipped": 6, "ok": 7, "compliant": 7}
COLORS = {"failed": "#d0243c", "drifted": "#d0243c", "unreachable": "#7a0016",
          "changed": "#e0a800", "ok": "#2e9e4a", "compliant": "#2e9e4a"}
CHART_WIDTH = 360

Past = list[dict[str, str]]


def _environment() -> jinja2.Environment:
    template = resources.files("pushinstall.report").joinpath("templates/report.html.j2")
    return jinja2.Environment(
        loader=jinja2.DictLoader({"report.html": template.read_text(encoding="utf-8")}),
        autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def _chart(totals: list[tuple[str, int]]) -> dict[str, Any]:
    """One stacked bar, a segment per status, as wide as its share of the hosts."""
    count = sum(n for _, n in totals) or 1
    bars, x = [], 0.0
    for status, n in totals:
        width = CHART_WIDTH * n / count
        bars.append({"status": status, "count": n, "x": f"{x:.1f}", "width": f"{width:.1f}",
                     "color": COLORS.get(status, "#9a9a9a")})
        x += width
    return {"width": CHART_WIDTH, "height": 22, "bars": bars}


def _host(host: HostRecord, past: Past) -> dict[str, Any]:
    failed = [s for s in host.steps if s.status in UNMET_STATUSES]
    status = host.status or "interrupted"
    words = [host.name, status, host.message, *host.groups,
             *(f"{s.step} {s.message}" for s in failed)]
    return {
        "name": host.name, "status": status, "rank": RANK.get(status, 9),
        "groups": host.groups, "duration": host.duration, "message": host.message,
        "counts": sorted(host.counts.items()), "failed_steps": failed,
        "past": [*past, {"run_id": "this run", "started": "", "status": status}],
        "search": " ".join(words).lower(), "warnings": host.warnings,
        "os": host.facts.get("os") or "", "powershell": host.facts.get("powershell") or "",
    }


def render_html(record: RunRecord, history: dict[str, Past] | None = None) -> str:
    """The page for `record`; `history` gives each host's earlier runs, oldest first."""
    history = history or {}
    hosts = sorted((_host(h, history.get(h.name, [])) for h in record.hosts.values()),
                   key=lambda h: h["rank"])
    counts: dict[str, int] = {}
    for host in hosts:
        counts[host["status"]] = counts.get(host["status"], 0) + 1
    totals = sorted(counts.items(), key=lambda item: RANK.get(item[0], 9))
    finished = record.finished
    return _environment().get_template("report.html").render(
        run=record, hosts=hosts, totals=totals, chart=_chart(totals),
        groups=sorted({g for h in record.hosts.values() for g in h.groups}),
        started=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(record.started or 0)),
        duration=f"{finished.duration:.1f}s" if finished else "unfinished",
        exit_code=finished.exit_code if finished else "?",
        interrupted=finished is None or finished.interrupted,
    )
