"""The JSONL sink: one line per event, flushed as it happens, secrets masked."""

from __future__ import annotations

import json
from pathlib import Path

from pushinstall.events import HostFinished, RunStarted, StepResult
from pushinstall.report.jsonl import JsonlSink
from pushinstall.secret import MASK, Redactor


def test_each_event_is_one_flushed_line(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "r1.jsonl"
    sink = JsonlSink(path)
    sink.emit(RunStarted(run_id="r1", mode="run", playbook="p.yml", hosts=["web01"]))
    # Readable before close: a killed run keeps every line already written.
    first = path.read_text(encoding="utf-8").splitlines()
    assert len(first) == 1 and json.loads(first[0])["kind"] == "run_started"
    sink.emit(StepResult(host="web01", step="Install ünïcode", status="changed", diff="a -> b"))
    sink.emit(HostFinished(host="web01", status="changed", counts={"changed": 1}))
    sink.close()
    sink.close()
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [line["kind"] for line in lines] == ["run_started", "step_result", "host_finished"]
    assert lines[1]["step"] == "Install ünïcode" and lines[1]["status"] == "changed"
    assert lines[2]["counts"] == {"changed": 1}


def test_redactor_masks_a_secret_that_slipped_into_a_message(tmp_path: Path) -> None:
    redactor = Redactor()
    redactor.add("hunter2-passphrase")
    path = tmp_path / "r.jsonl"
    sink = JsonlSink(path, redactor=redactor)
    sink.emit(StepResult(host="h", step="s", status="failed",
                         message="exit 14 with hunter2-passphrase"))
    sink.close()
    text = path.read_text(encoding="utf-8")
    assert "hunter2" not in text and MASK in text
