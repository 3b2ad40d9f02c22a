"""The console sink: plain lines for cron, and the recap."""

from __future__ import annotations

import io

from pushinstall.events import (
    HostFinished,
    HostStarted,
    RebootEvent,
    RunFinished,
    RunStarted,
    StepResult,
)
from pushinstall.report.console import ConsoleSink


def feed(sink: ConsoleSink, mode: str = "run") -> str:
    stream = sink.stream
    sink.emit(RunStarted(run_id="r1", mode=mode, playbook="asr.yml", hosts=["web01", "db1"]))
    sink.emit(HostStarted(host="web01"))
    sink.emit(StepResult(host="web01", step="Staging directory", status="ok"))
    sink.emit(StepResult(host="web01", step="Install Mobility service", status="changed",
                         diff="product: absent -> 9.62"))
    sink.emit(RebootEvent(host="web01", step="Install Mobility service", duration=41.0))
    sink.emit(StepResult(host="web01", step="Old step", status="skipped"))
    sink.emit(HostFinished(host="web01", status="changed",
                           counts={"ok": 1, "changed": 1, "skipped": 1}))
    sink.emit(HostFinished(host="db1", status="unreachable", counts={"unreachable": 1},
                           message="db1: connection refused"))
    sink.emit(RunFinished(run_id="r1", totals={"changed": 1, "unreachable": 1}, exit_code=4,
                          duration=3.0))
    sink.close()
    assert isinstance(stream, io.StringIO)
    return stream.getvalue()


def test_plain_lines_and_recap() -> None:
    out = feed(ConsoleSink(io.StringIO()))
    lines = out.splitlines()
    assert "web01  step 'Install Mobility service'  changed" in lines
    assert "web01  rebooted for step 'Install Mobility service' (41.0s)" in lines
    assert "db1    unreachable: db1: connection refused" in lines
    # ok and skipped steps are quiet unless verbose
    assert "Staging directory" not in out and "Old step" not in out
    assert "web01  ok=1 changed=1 failed=0 unreachable=0 skipped=1  changed" in lines
    assert "db1    ok=0 changed=0 failed=0 unreachable=1 skipped=0  unreachable" in lines
    assert lines[-1] == "2 host(s): 1 changed, 1 unreachable in 3.0s, exit 4"


def test_verbose_shows_every_step_and_diff_when_asked() -> None:
    out = feed(ConsoleSink(io.StringIO(), verbose=1, diff=True))
    lines = out.splitlines()
    assert "web01  step 'Staging directory'  ok" in lines
    assert "web01  step 'Old step'  skipped" in lines
    assert "         product: absent -> 9.62" in lines
    assert "web01  started" in lines


def test_check_mode_recap_counts_drift() -> None:
    sink = ConsoleSink(io.StringIO())
    sink.emit(RunStarted(run_id="r", mode="check", playbook="p", hosts=["a"]))
    sink.emit(StepResult(host="a", step="svagents running", status="drifted",
                         diff="service 'svagents': Stopped -> Running"))
    sink.emit(HostFinished(host="a", status="drifted", counts={"ok": 4, "drifted": 1}))
    sink.emit(RunFinished(run_id="r", totals={"drifted": 1}, exit_code=2))
    out = sink.stream.getvalue()  # type: ignore[attr-defined]
    assert "a  step 'svagents running'  drifted" in out
    assert "     service 'svagents': Stopped -> Running" in out  # drift always shows its diff
    assert "a  ok=4 changed=0 failed=0 unreachable=0 skipped=0 drifted=1  drifted" in out
