"""The HTML report in a real browser: headless Chromium renders it, takes a screenshot, and the
DOM after its script ran says the counts, a failed host's error and the sort/filter work.

Chromium is Debian's `chromium` (.ci/run installs it); in CI (CI=true) a missing browser fails
the test instead of skipping it. One browser loads every URL in a tab of its own, driven over
the DevTools protocol on a pipe (`--remote-debugging-pipe`): a launch per URL cost ~1 s of CPU
each, nine times.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import html.parser
import json
import os
import select
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def _high(fd: int) -> int:
    """`fd` moved to a number of 10 or more, where bash's `3<&` and `4>&` cannot clobber it."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


class Browser:
    """One headless Chromium, driven over the DevTools protocol on fds 3 (commands) and 4
    (answers and events), each message JSON ended by a NUL (`--remote-debugging-pipe`)."""

    def __init__(self, profile: Path) -> None:
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync",
                 f"--user-data-dir={profile}", "--remote-debugging-pipe"]
        self._log = (profile.parent / "chromium.log").open("wb")    # its chatter, read on failure
        commands, self._commands = map(_high, os.pipe())
        self._answers, answers = map(_high, os.pipe())
        # bash puts the two pipe ends on the fds Chromium reads and writes, then execs it (dash
        # takes no fd number above 9 in a redirection, and pytest's are above)
        self.process = subprocess.Popen(
            ["bash", "-c", f'exec "$0" "$@" 3<&{commands} 4>&{answers}', chromium(), *flags],
            pass_fds=(commands, answers), stdout=subprocess.DEVNULL, stderr=self._log)
        os.close(commands)
        os.close(answers)
        self._buffer = b""
        self._events: list[dict[str, Any]] = []
        self._id = 0

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """The result of one command (in the page `session`, else the browser's)."""
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._next()
            if answer.get("id") == self._id:
                assert "error" not in answer, (method, answer)
                result: dict[str, Any] = answer["result"]
                return result
            self._events.append(answer)

    def wait_for(self, method: str, session: str) -> None:
        """Until the page `session` sent event `method` (or had sent it already)."""
        while True:
            for event in self._events:
                if event.get("method") == method and event.get("sessionId") == session:
                    self._events.remove(event)
                    return
            self._events.append(self._next())

    def _next(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._answers], [], [], 60)
            chunk = os.read(self._answers, 1 << 16) if ready else b""
            assert chunk, "chromium went silent:\n" + Path(self._log.name).read_text()[-3000:]
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        loaded: dict[str, Any] = json.loads(message)
        return loaded

    def load(self, url: str) -> tuple[str, str]:
        """A new tab (1280x900) that loaded `url` and ran its scripts: (target, session)."""
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.send("Page.enable", session)
        self.send("Emulation.setDeviceMetricsOverride", session, width=1280, height=900,
                  deviceScaleFactor=1, mobile=False)
        self.send("Page.navigate", session, url=url)
        self.wait_for("Page.loadEventFired", session)
        return str(target), str(session)

    def close(self) -> None:
        """Quit the browser."""
        with contextlib.suppress(OSError):
            os.write(self._commands, json.dumps({"id": 0, "method": "Browser.close"}).encode()
                     + b"\0")
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._commands)
        os.close(self._answers)
        self._log.close()


def browse(browser: Browser, page: Path, fragment: str = "",
           screenshot: Path | None = None) -> str:
    """The DOM of `page#fragment` after its scripts ran (or a screenshot of it), as a browser
    that just opened it has it."""
    target, session = browser.load(page.as_uri() + fragment)
    if screenshot:
        data = browser.send("Page.captureScreenshot", session, format="png")["data"]
        screenshot.write_bytes(base64.b64decode(data))
        dom = ""
    else:
        dom = str(browser.send("Runtime.evaluate", session, returnByValue=True,
                               expression="document.documentElement.outerHTML")["result"]["value"])
    browser.send("Target.closeTarget", targetId=target)
    return dom


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


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    chromium()
    opened = Browser(tmp_path / "profile")
    yield opened
    opened.close()


def test_report_in_headless_chromium(tmp_path: Path, browser: Browser) -> None:
    page = make_report(tmp_path / "reports")
    shot = tmp_path / "report.png"
    browse(browser, page, screenshot=shot)
    assert shot.stat().st_size > 10_000          # a picture, not an empty page

    dom = Rows(browse(browser, page))
    assert dom.ids["count-failed"] == "1" and dom.ids["count-drifted"] == "1"
    assert dom.ids["count-hosts"] == "5" and dom.ids["shown"] == "5"
    assert dom.rows[0] == ("sql01", False)        # failed hosts first
    text = browse(browser, page)
    assert ERROR in text                          # the error itself, not only the diff
    assert "UnifiedAgent: registering with 10.0.0.115" in text       # and the log tail
    assert "&lt;b&gt;Installer exit code 14&lt;/b&gt;" in text       # escaped, not markup

    failed = Rows(browse(browser, page, "#status=failed"))
    assert failed.shown() == ["sql01"] and failed.ids["shown"] == "1"
    web = Rows(browse(browser, page, "#group=role_web"))
    assert web.shown() == ["web02", "web01"]   # changed before ok
    searched = Rows(browse(browser, page, "#q=passphrase"))
    assert searched.shown() == ["sql01"]
    by_name = Rows(browse(browser, page, "#sort=name"))
    assert by_name.shown() == sorted(HOSTS)
    backwards = Rows(browse(browser, page, "#sort=-duration"))
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
