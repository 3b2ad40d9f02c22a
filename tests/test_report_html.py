"""The HTML report in a real browser: headless Chromium renders it, takes a screenshot, and the
DOM after its script ran says the counts, a failed host's error and the sort/filter work.

Chromium is Debian's `chromium` (.ci/run installs it); in CI (CI=true) a missing browser fails
the test instead of skipping it.
"""

from __future__ import annotations

import html.parser
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cli_kit import PLAYBOOK, SECRETS, cli, write_inventory

from pushinstall.events import (
    HostFinished,
    HostStarted,
    RunFinished,
    RunStarted,
    StepResult,
)
from pushinstall.report.files import ReportFiles

HOSTS = {"web01": "ok", "web02": "changed", "sql01": "failed", "app01": "unreachable",
         "app02": "drifted"}
ERROR = "exit 14: invalid passphrase or configuration server endpoint"
TAIL = ["UnifiedAgent: registering with 10.0.0.115", "<b>Installer exit code 14</b>"]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("chromium is not installed (.ci/run installs Debian's chromium)")
    pytest.skip("chromium is not installed")


def browse(page: Path, profile: Path, fragment: str = "", screenshot: Path | None = None) -> str:
    """The DOM of `page#fragment` after its scripts ran (or a screenshot of it)."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", "--disable-sync",
             f"--user-data-dir={profile}", "--window-size=1280,900"]
    what = [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    result = subprocess.run([chromium(), *flags, *what, page.as_uri() + fragment],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


class Rows(html.parser.HTMLParser):
    """The host rows (tbody.host) in DOM order, with whether each is hidden; and ids' text."""

    def __init__(self, dom: str) -> None:
        super().__init__()
        self.rows: list[tuple[str, bool]] = []
        self.ids: dict[str, str] = {}
        self._id: str | None = None
        self.feed(dom)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "tbody" and values.get("class") == "host":
            self.rows.append((values.get("data-name") or "", "hidden" in values))
        self._id = values.get("id")

    def handle_data(self, data: str) -> None:
        if self._id:
            self.ids[self._id] = self.ids.get(self._id, "") + data.strip()

    def shown(self) -> list[str]:
        return [name for name, hidden in self.rows if not hidden]


def make_report(folder: Path) -> Path:
    sink = ReportFiles(folder)
    groups = {name: ["site_ams", "role_web" if name.startswith("web") else "role_app"]
              for name in HOSTS}
    sink.emit(RunStarted(run_id="r-html", mode="run", playbook="asr.yml", hosts=list(HOSTS),
                         groups=groups))
    for number, (name, status) in enumerate(HOSTS.items()):
        sink.emit(HostStarted(host=name))
        if status == "failed":
            sink.emit(StepResult(host=name, step="Install Mobility service", status="failed",
                                 diff="package: absent -> 9.62", message=ERROR, duration=6.0,
                                 log_tail=TAIL))
        elif status != "unreachable":
            sink.emit(StepResult(host=name, step="Service svagents", status=status))
        sink.emit(HostFinished(host=name, status=status, counts={status: 1},
                               message="connection refused" if status == "unreachable" else "",
                               duration=float(number * 7 % 5)))
    sink.emit(RunFinished(run_id="r-html", totals={s: 1 for s in HOSTS.values()}, exit_code=2,
                          duration=9.0))
    sink.close()
    return folder / "latest.html"


def test_report_in_headless_chromium(tmp_path: Path) -> None:
    page = make_report(tmp_path / "reports")
    profile = tmp_path / "profile"
    shot = tmp_path / "report.png"
    browse(page, profile, screenshot=shot)
    assert shot.stat().st_size > 10_000          # a picture, not an empty page

    dom = Rows(browse(page, profile))
    assert dom.ids["count-failed"] == "1" and dom.ids["count-drifted"] == "1"
    assert dom.ids["count-hosts"] == "5" and dom.ids["shown"] == "5"
    assert dom.rows[0] == ("sql01", False)        # failed hosts first
    text = browse(page, profile)
    assert ERROR in text                          # the error itself, not only the diff
    assert "UnifiedAgent: registering with 10.0.0.115" in text       # and the log tail
    assert "&lt;b&gt;Installer exit code 14&lt;/b&gt;" in text       # escaped, not markup

    failed = Rows(browse(page, profile, "#status=failed"))
    assert failed.shown() == ["sql01"] and failed.ids["shown"] == "1"
    web = Rows(browse(page, profile, "#group=role_web"))
    assert web.shown() == ["web02", "web01"]   # changed before ok
    searched = Rows(browse(page, profile, "#q=passphrase"))
    assert searched.shown() == ["sql01"]
    by_name = Rows(browse(page, profile, "#sort=name"))
    assert by_name.shown() == sorted(HOSTS)
    backwards = Rows(browse(page, profile, "#sort=-duration"))
    position = {name: number * 7 % 5 for number, name in enumerate(HOSTS)}
    durations = [position[name] for name in backwards.shown()]
    assert durations == sorted(durations, reverse=True) and len(set(durations)) == 5


def test_report_is_self_contained(tmp_path: Path) -> None:
    page = make_report(tmp_path).read_text()
    for needle in ("http://", "https://", "src=", "<link", "@import", "url("):
        assert needle not in page.replace("https://no-color.org", ""), needle


def test_cli_report_dir_keeps_every_run(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path / "inv")
    reports = tmp_path / "reports"
    first = cli("run", "-i", str(inventory), str(PLAYBOOK), "--report-dir", str(reports))
    second = cli("run", "-i", str(inventory), str(PLAYBOOK), "--report-dir", str(reports))
    assert first.returncode == second.returncode == 2, first.stdout + first.stderr
    runs = sorted(p.name for p in reports.iterdir() if not p.name.startswith("latest"))
    assert len(runs) == 6, runs                   # two runs, three files each
    newest = max(p.stem for p in reports.iterdir() if not p.name.startswith("latest"))
    for extension in ("json", "xml", "html"):
        assert (reports / f"latest.{extension}").resolve().name == f"{newest}.{extension}"
    page = (reports / "latest.html").read_text()
    assert "invalid passphrase or configuration server endpoint" in page
    assert "Installer finished with forced exit code 14." in page        # the log tail
    assert 'class="os">Microsoft Windows Server' in page                 # the facts summary
    assert page.count('class="cell ') >= 2        # this run and the one before, per host
    everything = "".join(p.read_text() for p in reports.iterdir()) + first.stdout + second.stdout
    assert not any(secret in everything for secret in SECRETS)
