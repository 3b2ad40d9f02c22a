"""End-of-run report files: JSON, JUnit XML (one testsuite per host) and a self-contained HTML.

`--report-dir DIR` keeps every run: `DIR/<run_id>.json`, `.xml` and `.html`, and `latest.json`,
`latest.xml`, `latest.html` point at the newest (symbolic links; copies where the file system
has none), so a nightly job keeps every night's report and a dashboard reads `latest.*`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

from pushinstall.paths import write_atomic
from pushinstall.report.collect import Collector, RunRecord
from pushinstall.report.html import render_html
from pushinstall.report.junit import render_junit

__all__ = ["ReportFiles", "render_html", "render_json", "render_junit"]

EXTENSIONS = ("json", "xml", "html")
HISTORY_STRIP = 20


def _point_latest(target: Path, link: Path) -> None:
    """Make `link` name `target` (same folder), replacing what was there in one rename."""
    temp = link.with_name(f".{link.name}.new")
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()
    try:
        temp.symlink_to(target.name)
    except OSError:  # no symbolic links here (some SMB mounts): a copy does
        shutil.copyfile(target, temp)
    os.replace(temp, link)


def render_json(record: RunRecord) -> str:
    """The run as indented JSON (docs/report-schema.json)."""
    return json.dumps(record.to_dict(), indent=2, default=str) + "\n"


class ReportFiles(Collector):
    """A sink that writes the run's three report files into a folder on close.

    `history` is the history database: the HTML shows each host's earlier runs from it."""

    def __init__(self, directory: str | Path, history: Path | None = None) -> None:
        super().__init__()
        self.directory = Path(directory)
        self.history = history

    def close(self) -> None:
        """Write the three files and move `latest.*` (also after an interrupted run)."""
        record = self.record
        name = record.run_id or "unnamed-run"
        past = {}
        if self.history is not None:
            from pushinstall.report.history import host_pasts

            with contextlib.suppress(Exception):  # an unreadable history loses only the strip
                past = host_pasts(self.history, list(record.hosts), HISTORY_STRIP - 1)
        texts = (render_json(record), render_junit(record), render_html(record, past))
        for extension, text in zip(EXTENSIONS, texts, strict=True):
            path = self.directory / f"{name}.{extension}"
            write_atomic(path, text)
            _point_latest(path, self.directory / f"latest.{extension}")
