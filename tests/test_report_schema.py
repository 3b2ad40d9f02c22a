"""Every JSON report validates against docs/report-schema.json; JUnit counts are computed."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
from cli_kit import PLAYBOOK, REPO, SECRETS, cli, write_inventory

from pushinstall.events import HostFinished, HostStarted, RunStarted, StepResult
from pushinstall.report.collect import Collector
from pushinstall.report.files import render_json
from pushinstall.report.junit import render_junit

SCHEMA = json.loads((REPO / "docs" / "report-schema.json").read_text())


def validate(report: dict) -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.Draft202012Validator(SCHEMA).validate(report)


def test_run_and_check_reports_match_the_schema(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path / "inv")
    reports = tmp_path / "reports"
    for command in (["run"], ["check"], ["run", "--check"], ["run", "-e", "forks_x=1"]):
        cli(*command, "-i", str(inventory), str(PLAYBOOK), "--report-dir", str(reports))
    files = sorted(p for p in reports.glob("*.json") if p.name != "latest.json")
    assert len(files) == 4
    for path in files:
        report = json.loads(path.read_text())
        validate(report)
        assert not any(secret in path.read_text() for secret in SECRETS)
    # run ids sort by the second they began, and these four can share one: take the last by
    # what it was run with
    report = next(json.loads(path.read_text()) for path in files
                  if json.loads(path.read_text())["options"]["extra_vars"] == ["forks_x"])
    failed = next(h for h in report["hosts"] if h["name"] == "h-fail")
    install = next(s for s in failed["steps"] if s["status"] == "failed")
    assert "invalid passphrase" in install["message"] and install["log_tail"]
    assert failed["facts"]["os"].startswith("Microsoft Windows Server")
    assert failed["facts"]["powershell"]
    assert next(h for h in report["hosts"] if h["name"] == "h-down")["facts"] == {}


def test_the_facts_summary_has_the_agent_build_and_the_registered_cs(tmp_path: Path) -> None:
    """Through a real run on the lab: the summary shows what the install and register steps
    left (their verify), and a check afterwards reads the same from the host."""
    inventory = write_inventory(tmp_path / "inv")
    reports = tmp_path / "reports"
    for command in (["run"], ["check"]):
        cli(*command, "-i", str(inventory), str(PLAYBOOK), "--report-dir", str(reports))
        report = json.loads((reports / "latest.json").read_text())
        validate(report)
        hosts = {h["name"]: h["facts"] for h in report["hosts"]}
        assert hosts["h-ok"]["agent_build"] == "9.62.7172.1", hosts["h-ok"]
        assert hosts["h-ok"]["configuration_server"] == "10.0.0.115"
        # the installer failed (exit 14): nothing installed, nothing registered
        assert hosts["h-fail"]["agent_build"] is None
        assert hosts["h-fail"]["configuration_server"] is None
        assert hosts["h-down"] == {}


def test_a_killed_run_still_validates_and_junit_is_not_green() -> None:
    # the run started, one host went half way, then the process died: no RunFinished
    collector = Collector()
    collector.emit(RunStarted(run_id="r-killed", mode="run", playbook="p.yml",
                              hosts=["a", "b"]))
    collector.emit(HostStarted(host="a"))
    collector.emit(StepResult(host="a", step="Staging directory", status="changed"))
    report = json.loads(render_json(collector.record))
    validate(report)
    assert report["interrupted"] is True and report["finished"] is None
    suites = ET.fromstring(render_junit(collector.record))
    assert int(suites.get("errors")) >= 1 and suites.get("failures") == "0"
    names = [case.get("name") for case in suites.iter("testcase") if case.find("error") is not None]
    assert "run completed" in names


def test_junit_counts_are_computed_from_the_cases() -> None:
    collector = Collector()
    collector.emit(RunStarted(run_id="r", mode="check", playbook="p.yml", hosts=["a", "b", "c"]))
    collector.emit(StepResult(host="a", step="one", status="drifted", message="stopped"))
    collector.emit(StepResult(host="a", step="two", status="skipped"))
    collector.emit(StepResult(host="a", step="three", status="ok"))
    collector.emit(HostFinished(host="a", status="drifted"))
    collector.emit(HostFinished(host="b", status="unreachable", message="refused"))
    collector.emit(HostFinished(host="c", status="failed", message="interrupted before step 'x'"))
    from pushinstall.events import RunFinished

    collector.emit(RunFinished(run_id="r", exit_code=130, interrupted=True))
    suites = ET.fromstring(render_junit(collector.record))
    a, b, c, run = suites.findall("testsuite")
    assert (a.get("tests"), a.get("failures"), a.get("errors"), a.get("skipped")) == \
        ("3", "1", "0", "1")
    assert (b.get("errors"), b.find("testcase").get("name")) == ("1", "connect")
    assert c.find("testcase/error").get("type") == "interrupted"
    assert run.get("name") == "pushinstall" and run.get("errors") == "1"
    for attribute in ("tests", "failures", "errors", "skipped"):
        total = sum(int(s.get(attribute)) for s in suites.findall("testsuite"))
        assert suites.get(attribute) == str(total)
    assert int(suites.get("errors")) + int(suites.get("failures")) > 0


def test_cli_junit_of_a_failed_run(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path / "inv")
    reports = tmp_path / "reports"
    result = cli("run", "-i", str(inventory), str(PLAYBOOK), "--report-dir", str(reports))
    assert result.returncode == 2
    suites = ET.parse(reports / "latest.xml").getroot()
    by_host = {s.get("name"): s for s in suites.findall("testsuite")}
    assert by_host["h-fail"].get("failures") == "1"
    assert by_host["h-down"].get("errors") == "1"
    assert by_host["h-ok"].get("failures") == by_host["h-ok"].get("errors") == "0"
    failure = by_host["h-fail"].find("testcase/failure")
    assert "Installer finished with forced exit code 14." in failure.text


def test_jsonl_log_has_its_schema_on_the_first_line_and_iso_times(tmp_path: Path,
                                                                  state_dir: Path) -> None:
    inventory = write_inventory(tmp_path / "inv", {"h-ok": ""})
    cli("run", "-i", str(inventory), str(PLAYBOOK), "--check")
    (log,) = (state_dir / "runs").glob("*.jsonl")
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert lines[0]["schema"] == 1 and lines[0]["kind"] == "run_started"
    assert all("schema" not in line for line in lines[1:])
    assert all(line["at"].endswith("Z") and line["at"][10] == "T" for line in lines)
