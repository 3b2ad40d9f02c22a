"""End-of-run reports: JSON, JUnit XML, HTML and the SQLite history, from a run's events."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pushinstall.events import (
    HostFinished,
    HostStarted,
    RebootEvent,
    RunFinished,
    RunStarted,
    StepResult,
)
from pushinstall.paths import NotARegularFile, write_atomic
from pushinstall.report.files import ReportFiles
from pushinstall.report.history import History, history_path, last_status


def feed(sink: ReportFiles | History, run_id: str = "r1", web_status: str = "changed") -> None:
    events = [
        RunStarted(run_id=run_id, mode="run", playbook="asr.yml", hosts=["web01", "db01"]),
        HostStarted(host="web01"),
        StepResult(host="web01", step="Staging directory", status="ok"),
        StepResult(host="web01", step="Install <Mobility>", status=web_status,
                   diff="product: absent -> 9.62", duration=12.5),
        RebootEvent(host="web01", step="Install <Mobility>", boot_time_before="a",
                    boot_time_after="b", duration=40.0),
        HostFinished(host="web01", status=web_status, counts={"ok": 1, web_status: 1}),
        HostStarted(host="db01"),
        HostFinished(host="db01", status="unreachable", message="connection refused"),
        RunFinished(run_id=run_id, totals={web_status: 1, "unreachable": 1}, exit_code=4),
    ]
    for event in events:
        sink.emit(event)
    sink.close()


def test_report_files(tmp_path: Path) -> None:
    feed(ReportFiles(tmp_path / "out"), web_status="failed")
    data = json.loads((tmp_path / "out" / "latest.json").read_text())
    assert data["exit_code"] == 4
    assert [h["name"] for h in data["hosts"]] == ["web01", "db01"]
    assert data["hosts"][0]["steps"][1]["diff"] == "product: absent -> 9.62"
    assert data["hosts"][0]["reboots"][0]["duration"] == 40.0

    suites = ET.parse(tmp_path / "out" / "latest.xml").getroot()
    web, db = suites.findall("testsuite")
    assert (web.get("name"), web.get("tests"), web.get("failures")) == ("web01", "2", "1")
    assert web.findall("testcase")[1].find("failure").text == "product: absent -> 9.62"
    assert db.find("testcase/error").get("message") == "connection refused"

    page = (tmp_path / "out" / "latest.html").read_text()
    assert "Install &lt;Mobility&gt;" in page       # escaped, not markup
    assert '<td class="unreachable status">unreachable</td>' in page


def test_history_records_runs_and_last_status(tmp_path: Path) -> None:
    path = history_path(tmp_path)
    feed(History(path), run_id="r1", web_status="changed")
    feed(History(path), run_id="r2", web_status="failed")
    assert last_status(path, "web01") == "failed"
    assert last_status(path, "db01") == "unreachable"
    assert last_status(path, "nobody") is None
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 2
        steps = db.execute(
            "SELECT step, status FROM step_results WHERE run_id='r2' AND host='web01'"
        ).fetchall()
    assert steps == [("Staging directory", "ok"), ("Install <Mobility>", "failed")]


def test_one_rename_write_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    """write_atomic (reports, the secret-file ledger, the agent memory) never renames over a
    device, FIFO or socket; over a regular file it replaces the text in one rename."""
    fifo = tmp_path / "latest.json"
    os.mkfifo(fifo)
    with pytest.raises(NotARegularFile, match="is not a regular file"):
        write_atomic(fifo, "{}")
    assert stat.S_ISFIFO(fifo.stat().st_mode) and os.listdir(tmp_path) == ["latest.json"]
    plain = tmp_path / "plain.json"
    write_atomic(plain, "one")
    write_atomic(plain, "two")
    assert plain.read_text() == "two" and sorted(os.listdir(tmp_path)) == ["latest.json",
                                                                            "plain.json"]
