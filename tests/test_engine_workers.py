"""The fleet over forked worker processes (engine/workers.py) behaves as the fleet in one
process: same outcomes, same events, the lab hosts keep what the workers did, Ctrl-C still
stops and summarises, a dying worker fails only its own hosts. Real pieces as in
kit.py; real fork, real pipes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import warm
from kit import FAST, SVAGENTS, CtrlCSink, ListSink, asr_playbook, lab_fleet, run_cli, run_on_lab

from pushinstall import events
from pushinstall.engine import RunOptions, run_fleet
from pushinstall.engine.workers import HOSTS_PER_WORKER, auto_workers, available
from pushinstall.lab import lab_host
from pushinstall.lab.transport import LabTransport
from pushinstall.model import Host, Status

pytestmark = pytest.mark.skipif(not available(), reason="worker processes need fork")

FAULTS: dict[int, dict[str, Any]] = {
    2: {"unreachable": True},
    5: {"installer_exit_code": 14},
    7: {"pending_reboot": True, "reboot_seconds": 0.1},
    9: {"service_stops_after_start": ["svagents"]},
    11: {"refuse_first_connects": 1},
}


def shape(sink: Any) -> dict[str, Any]:
    """What a run reported, without times and durations."""
    steps = sorted((e.host, e.step, e.status, e.message) for e in sink.of(events.StepResult))
    finished = sorted((e.host, e.status, e.message) for e in sink.of(events.HostFinished))
    return {"steps": steps, "finished": finished,
            "reboots": sorted(e.host for e in sink.of(events.RebootEvent))}


def test_two_workers_report_exactly_what_one_process_does(tmp_path: Path) -> None:
    playbook = asr_playbook(tmp_path)
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one = lab_fleet(tmp_path / "one", 16, FAULTS, prefix="one")
    two = lab_fleet(tmp_path / "two", 16, FAULTS, prefix="two")
    alone, alone_sink = run_on_lab(one, playbook, forks=8, workers=1)
    forked, forked_sink = run_on_lab(two, playbook, forks=8, workers=2)

    def renamed(value: Any) -> Any:
        return repr(value).replace("one0", "X0").replace("two0", "X0")

    assert renamed(shape(forked_sink)) == renamed(shape(alone_sink))
    assert forked.totals == alone.totals == {Status.CHANGED: 13, Status.FAILED: 2,
                                             Status.UNREACHABLE: 1}
    assert {h: o.status for h, o in forked.hosts.items()} == {
        h.replace("one", "two"): o.status for h, o in alone.hosts.items()}
    assert forked.hosts["two009"].steps[SVAGENTS] == Status.FAILED
    assert "lab-passphrase" not in repr(forked_sink.events) + repr(forked)
    assert isinstance(forked_sink.events[-1], events.RunFinished)
    # the workers saved what they did to the lab hosts: this process sees it, and a check
    # run here finds the healthy hosts compliant
    assert lab_host("two000").generation > 0
    checked, _ = run_on_lab(two, playbook, forks=8, workers=1, mode="check")
    assert checked.hosts["two000"].status == Status.COMPLIANT


def test_auto_is_one_worker_per_50_forks_and_hosts_and_at_most_one_per_cpu() -> None:
    cpus = os.cpu_count() or 1
    assert auto_workers(50, 1000) == 1                  # the default forks: one process
    assert auto_workers(100, 1000) == min(2, cpus)
    assert auto_workers(400, 30) == 1                   # a small fleet stays in one process
    assert auto_workers(10_000, 10_000) == cpus
    assert HOSTS_PER_WORKER == 50


def test_ctrl_c_reaches_the_workers_through_the_parent(tmp_path: Path) -> None:
    fleet = lab_fleet(tmp_path, 40, {i: {"latency_ms": 30} for i in range(40)})
    playbook = asr_playbook(tmp_path)
    first_done = CtrlCSink(lambda event: isinstance(event, events.HostFinished))
    started = time.monotonic()
    summary, sink = run_on_lab(fleet, playbook, first_done, forks=4, workers=2)
    assert summary.interrupted and summary.exit_code == 130
    assert time.monotonic() - started < 15
    statuses = [o.status for o in summary.hosts.values()]
    assert statuses.count(Status.SKIPPED) >= 20          # most never started
    assert len(sink.of(events.HostFinished)) == 40       # every host still reported
    assert isinstance(sink.events[-1], events.RunFinished)


def test_a_worker_that_dies_fails_its_hosts_and_the_run_goes_on(tmp_path: Path) -> None:
    fleet = lab_fleet(tmp_path, 12)

    def dying(host: Host, state_dir: Path | None = None, redactor: Any = None) -> LabTransport:
        if host.name == "web003":
            os._exit(3)     # stands in for a crash of the worker process (a bug, an OOM kill)
        return LabTransport(host, state_dir, redactor)

    sink = ListSink()
    summary = run_fleet(fleet, asr_playbook(tmp_path), RunOptions(forks=2, workers=2,
                                                                   backoff=FAST),
                        [sink], transport_factory=dying)
    failed = {h for h, o in summary.hosts.items() if o.status == Status.FAILED}
    assert "web003" in failed
    assert all("worker process" in summary.hosts[h].message for h in failed)
    assert len(failed) < len(fleet)     # the other worker carried on with the rest
    assert all(summary.hosts[h.name].status in (Status.CHANGED, Status.FAILED)
               for h in fleet)
    assert summary.exit_code == 2
    assert len(sink.of(events.HostFinished)) == len(fleet)


@pytest.mark.parametrize("wire", ["psrp", "winrm", "ssh"])
def test_cli_run_with_two_workers_over_the_wire_then_check(state_dir: Path, wire: str) -> None:
    """`pushinstall run --workers 2` on inventories/lab.yml in a subprocess: each worker
    starts its own lab endpoint (the parent's are not inherited) and reaches its hosts over
    the wire; what the workers did is saved, so a `check` in a new process finds all
    compliant."""
    root = Path(__file__).parent.parent
    env = dict(os.environ, PUSHINSTALL_LAB_WIRE=wire, PUSHINSTALL_STATE_DIR=str(state_dir))
    # two hosts: one for each worker (more hosts would prove the same, slower)
    files = ["-i", str(root / "inventories" / "lab.yml"),
             str(root / "playbooks" / "asr-mobility.yml"), "--limit", "lab-web01,lab-app03"]
    done = warm.run(["run", *files, "--workers", "2"], env=env, capture_output=True, text=True,
                    timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 host(s): 2 changed" in done.stdout
    done = warm.run(["check", *files], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 host(s): 2 compliant" in done.stdout


def test_zero_workers_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    root = Path(__file__).parent.parent
    refused = run_cli(["run", "-i", str(root / "inventories" / "lab.yml"),
                       str(root / "playbooks" / "asr-mobility.yml"), "--workers", "0"], capsys)
    assert refused.code == 5 and "Traceback" not in refused.err
    assert "'0' is not auto or a whole number 1-256" in refused.output


def test_what_this_process_did_to_a_lab_host_before_the_fork_is_kept(tmp_path: Path) -> None:
    fleet = lab_fleet(tmp_path, 4, {i: {"latency_ms": 30} for i in range(4)})
    for host in fleet:   # touched here just before the run (an earlier run, a test's setup)
        lab_host(host.name, host.vars.get("lab")).handle(
            {"op": "ensure_directory", "args": {"path": "C:\\Setup"}})
    summary, _ = run_on_lab(fleet, asr_playbook(tmp_path), forks=4, workers=2)
    assert summary.totals == {Status.CHANGED: 4}
    checked, _ = run_on_lab(fleet, asr_playbook(tmp_path), forks=4, workers=1, mode="check")
    assert checked.totals == {Status.COMPLIANT: 4}


@pytest.mark.parametrize(("forks", "workers"), [(1, 2), (3, 2), (5, 3)])
def test_workers_never_run_more_hosts_at_once_than_forks(
        tmp_path: Path, forks: int, workers: int) -> None:
    fleet = lab_fleet(tmp_path, 8, {i: {"latency_ms": 10} for i in range(8)})
    summary, sink = run_on_lab(fleet, asr_playbook(tmp_path), forks=forks, workers=workers)
    in_flight = peak = 0
    for event in sink.events:
        if isinstance(event, events.HostStarted):
            in_flight += 1
            peak = max(peak, in_flight)
        elif isinstance(event, events.HostFinished):
            in_flight -= 1
    assert summary.totals == {Status.CHANGED: 8}
    assert peak == forks


def test_a_host_waiting_in_a_workers_queue_is_not_on_its_deadline_yet(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pushinstall.engine import fleet as engine

    monkeypatch.setattr(engine, "HOST_TIMEOUT_GRACE", 0.0)
    fleet = lab_fleet(tmp_path, 6, {i: {"latency_ms": 20} for i in range(6)})
    summary, _ = run_on_lab(fleet, asr_playbook(tmp_path, host_timeout=2.0), forks=2, workers=2)
    assert summary.totals == {Status.CHANGED: 6}     # each host takes ~0.5 s of its 2 s


def test_workers_end_when_the_parent_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(f"""
import os, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from pathlib import Path
from kit import asr_playbook, lab_fleet, run_on_lab
tmp = Path({str(tmp_path)!r})
hosts = lab_fleet(tmp, 40, {{i: {{"latency_ms": 50}} for i in range(40)}})
run_on_lab(hosts, asr_playbook(tmp), forks=4, workers=2)
""", encoding="utf-8")
    env = dict(os.environ, PUSHINSTALL_STATE_DIR=str(tmp_path / "state"))
    parent = subprocess.Popen([sys.executable, str(script)], env=env)
    children: list[int] = []
    deadline = time.monotonic() + 20
    while len(children) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
        children = _children_of(parent.pid)
    assert len(children) == 2
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in children)


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_workers_stay_one_process_where_fork_is_missing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pushinstall.engine import fleet as engine

    monkeypatch.setattr(engine, "available", lambda: False)
    fleet = lab_fleet(tmp_path, 3)
    summary, _ = run_on_lab(fleet, asr_playbook(tmp_path), forks=3, workers=2)
    assert summary.totals == {Status.CHANGED: 3}
    assert lab_host("web000").op_log   # ran here: this process's lab host saw the calls
