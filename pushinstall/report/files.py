"""End-of-run report files: JSON, JUnit XML (one testsuite per host) and a self-contained HTML."""

from __future__ import annotations

import html
import json
import os
import tempfile
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

from pushinstall.model import ATTENTION_STATUSES, Status
from pushinstall.report.collect import Collector, RunRecord


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temp, path)


def render_json(record: RunRecord) -> str:
    """The run as indented JSON."""
    return json.dumps(record.to_dict(), indent=2, default=str) + "\n"


def render_junit(record: RunRecord) -> str:
    """JUnit XML: a testsuite per host, a testcase per step; failed and drifted steps fail."""
    suites = ET.Element("testsuites", name=f"pushinstall {record.mode}: {record.playbook}")
    for host in record.hosts.values():
        failures = sum(1 for s in host.steps if s.status in ATTENTION_STATUSES)
        skipped = sum(1 for s in host.steps if s.status == Status.SKIPPED)
        suite = ET.SubElement(
            suites, "testsuite", name=host.name, tests=str(max(len(host.steps), 1)),
            failures=str(failures), errors="0", skipped=str(skipped),
            time=f"{host.duration:.3f}",
        )
        if not host.steps:
            case = ET.SubElement(suite, "testcase", classname=host.name, name="connect")
            if host.status in ATTENTION_STATUSES:
                ET.SubElement(case, "error", message=host.message or host.status).text = host.status
        for step in host.steps:
            case = ET.SubElement(
                suite, "testcase", classname=host.name, name=step.step,
                time=f"{step.duration:.3f}",
            )
            if step.status in ATTENTION_STATUSES:
                node = ET.SubElement(case, "failure", message=step.message or step.status)
                node.text = step.diff or step.message
            elif step.status == Status.SKIPPED:
                ET.SubElement(case, "skipped", message=step.message or "skipped")
        if host.warnings:   # JUnit readers show a suite's system-err
            ET.SubElement(suite, "system-err").text = "\n".join(
                f"WARNING: {w}" for w in host.warnings)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, "unicode") + "\n"


_STYLE = """
body{font:14px system-ui,Segoe UI,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#f3f3f3}.ok,.compliant{color:#176f2c}
.changed{color:#8a6100}.failed,.unreachable,.drifted,.interrupted{color:#b00020;font-weight:600}
.skipped,.reboot_pending{color:#555}.warning{color:#8a6100;font-weight:600}pre{margin:0;white-space:pre-wrap}
"""


def render_html(record: RunRecord) -> str:
    """A self-contained HTML page: totals, then each host and its steps."""
    esc = html.escape
    started = datetime.fromtimestamp(record.started or 0, timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S UTC"
    )
    totals = record.finished.totals if record.finished else {}
    rows = []
    for host in record.hosts.values():
        steps = "".join(
            f"<tr><td>{esc(s.step)}</td><td class='{esc(s.status)}'>{esc(s.status)}</td>"
            f"<td><pre>{esc(s.diff or s.message)}</pre></td><td>{s.duration:.1f}s</td></tr>"
            for s in host.steps
        )
        rows.append(
            f"<h2>{esc(host.name)} <span class='{esc(host.status)}'>{esc(host.status)}</span>"
            f"</h2><p>{esc(host.message)}</p>"
            + "".join(f"<p class='warning'>WARNING: {esc(w)}</p>" for w in host.warnings)
            + (f"<table><tr><th>step</th><th>status</th><th>diff / message</th><th>time</th>"
               f"</tr>{steps}</table>" if steps else "")
        )
    total_cells = "".join(
        f"<td class='{esc(k)}'>{esc(k)}: {v}</td>" for k, v in sorted(totals.items())
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>pushinstall {esc(record.mode)} {esc(record.run_id)}</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>pushinstall {esc(record.mode)}: {esc(record.playbook)}</h1>"
        f"<p>run {esc(record.run_id)}, started {started}, exit code "
        f"{record.finished.exit_code if record.finished else '?'}</p>"
        f"<table><tr>{total_cells}</tr></table>{''.join(rows)}</body></html>\n"
    )


class ReportFiles(Collector):
    """A sink that writes report.json, junit.xml and report.html into a folder on close."""

    def __init__(self, directory: str | Path) -> None:
        super().__init__()
        self.directory = Path(directory)

    def close(self) -> None:
        """Write the three files (also after an interrupted run)."""
        _write_atomic(self.directory / "report.json", render_json(self.record))
        _write_atomic(self.directory / "junit.xml", render_junit(self.record))
        _write_atomic(self.directory / "report.html", render_html(self.record))
