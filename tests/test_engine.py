"""The per-host pipeline on the real pieces: gather once, plan, apply what changes, reboot,
verify once. The shipped playbook (real loader, real templating, real resource types) runs on
lab hosts through `LabTransport`; the lab host model records every op (see kit.py for why it
is the one stand-in: no Windows box here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kit import (
    FAST,
    GATE,
    INSTALL,
    SKIPPED_STEPS,
    STEPS,
    SVAGENTS,
    ListSink,
    asr_playbook,
    lab,
    lab_fleet,
    run_on_lab,
)

from pushinstall import events
from pushinstall.lab.transport import LabTransport
from pushinstall.model import Host, RebootPolicy, Status
from pushinstall.secret import MASK

PASSPHRASE = "lab-passphrase"
READ_ONLY = {"facts", "batch"}


def only_facts(calls: list[dict[str, Any]]) -> bool:
    """True when every recorded request only reads (facts, or a batch of facts)."""
    for call in calls:
        if call["op"] == "batch":
            if not only_facts(call["args"]["requests"]):
                return False
        elif call["op"] != "facts":
            return False
    return True


def test_run_converges_then_a_second_run_changes_nothing_in_one_gather_call(
        tmp_path: Path) -> None:
    hosts = lab_fleet(tmp_path, 1)
    summary, sink = run_on_lab(hosts, asr_playbook(tmp_path))
    outcome = summary.hosts["web000"]
    assert (outcome.status, summary.exit_code) == (Status.CHANGED, 0)
    assert outcome.counts == {Status.OK: 5, Status.CHANGED: 5, Status.SKIPPED: SKIPPED_STEPS}
    assert sink.steps("web000")[INSTALL].message == "exit 0: success"
    host = lab(hosts[0])
    assert host.op_log[0] == "batch"                    # the gather
    generation = host.generation
    assert generation > 0

    host.op_log.clear()
    summary, sink = run_on_lab(hosts, asr_playbook(tmp_path))
    assert summary.hosts["web000"].status == Status.OK
    assert summary.hosts["web000"].counts == {Status.OK: STEPS - SKIPPED_STEPS,
                                              Status.SKIPPED: SKIPPED_STEPS}
    assert host.op_log == ["batch"]                     # the whole gather is ONE call
    assert host.generation == generation


def test_check_mode_makes_no_change_and_names_the_drifted_step(tmp_path: Path) -> None:
    hosts = lab_fleet(tmp_path, 1)
    host = lab(hosts[0])
    summary, sink = run_on_lab(hosts, asr_playbook(tmp_path), mode="check")
    assert summary.hosts["web000"].status == Status.DRIFTED and summary.exit_code == 2
    assert host.generation == 0 and host.op_log == ["batch"] and only_facts(host.calls)
    assert sink.steps("web000")[INSTALL].status == Status.DRIFTED

    summary, _ = run_on_lab(hosts, asr_playbook(tmp_path), check_mode=True)   # run --check
    assert host.generation == 0 and summary.hosts["web000"].status == Status.DRIFTED

    run_on_lab(hosts, asr_playbook(tmp_path))
    summary, _ = run_on_lab(hosts, asr_playbook(tmp_path), mode="check")
    assert summary.hosts["web000"].status == Status.COMPLIANT and summary.exit_code == 0

    assert host.handle({"op": "set_service", "args": {"name": "svagents",
                                                      "state": "stopped"}})["ok"]
    generation = host.generation
    host.calls.clear()
    summary, sink = run_on_lab(hosts, asr_playbook(tmp_path), mode="check")
    assert summary.exit_code == 2 and host.generation == generation and only_facts(host.calls)
    drifted = [(e.host, e.step) for e in sink.of(events.StepResult)
               if e.status == Status.DRIFTED]
    assert drifted == [("web000", SVAGENTS)]

    summary, _ = run_on_lab(hosts, asr_playbook(tmp_path), mode="check", remediate=True)
    assert summary.hosts["web000"].status == Status.CHANGED
    assert summary.hosts["web000"].counts == {Status.OK: STEPS - SKIPPED_STEPS - 1,
                                              Status.CHANGED: 1, Status.SKIPPED: SKIPPED_STEPS}


def test_installer_failure_fails_the_host_and_stops_its_steps(tmp_path: Path) -> None:
    hosts = lab_fleet(tmp_path, 1, {0: {"installer_exit_code": 14}})
    summary, sink = run_on_lab(hosts, asr_playbook(tmp_path))
    assert summary.hosts["web000"].status == Status.FAILED and summary.exit_code == 2
    steps = sink.steps("web000")
    assert steps[INSTALL].status == Status.FAILED
    assert steps[INSTALL].message.startswith(
        "exit 14: invalid passphrase or configuration server endpoint\nlast 2 lines of ")
    assert list(steps)[-1] == INSTALL                   # nothing after the failed step


@pytest.mark.parametrize(("on_pending", "reboot", "status", "reboots", "failed_step"), [
    ("fail", RebootPolicy(), Status.FAILED, 0, GATE),
    ("warn", RebootPolicy(), Status.CHANGED, 0, None),   # a pending rename does not stop it
    ("reboot", RebootPolicy(), Status.CHANGED, 1, None),
    ("reboot", RebootPolicy(mode="never"), Status.REBOOT_PENDING, 0, None),
    ("reboot", RebootPolicy(after_reboot="stop"), Status.REBOOT_PENDING, 1, None),
])
def test_pending_reboot_policies(tmp_path: Path, on_pending: str, reboot: RebootPolicy,
                                 status: str, reboots: int, failed_step: str | None) -> None:
    reboot.timeout = 20
    hosts = lab_fleet(tmp_path, 1, {0: {"pending_reboot": True, "reboot_seconds": 0.2}},
                      {0: {"on_pending": on_pending}})
    summary, sink = run_on_lab(hosts, asr_playbook(tmp_path, reboot=reboot))
    assert summary.hosts["web000"].status == status
    assert len(sink.of(events.RebootEvent)) == reboots
    assert lab(hosts[0]).op_log.count("reboot") == reboots
    steps = sink.steps("web000")
    if failed_step:
        assert [s for s, e in steps.items() if e.status == Status.FAILED] == [failed_step]
    if reboots:
        event = sink.of(events.RebootEvent)[0]
        assert event.boot_time_before != event.boot_time_after
    if status == Status.REBOOT_PENDING:
        assert summary.exit_code == 0
        assert steps[SVAGENTS].status == Status.SKIPPED
    if status == Status.CHANGED:
        assert steps[INSTALL].status == Status.CHANGED


def test_reboot_longer_than_the_timeout_fails_the_host(tmp_path: Path) -> None:
    hosts = lab_fleet(tmp_path, 1, {0: {"pending_reboot": True, "reboot_seconds": 5}})
    summary, sink = run_on_lab(hosts, asr_playbook(tmp_path, reboot=RebootPolicy(timeout=0.5)))
    outcome = summary.hosts["web000"]
    assert outcome.status == Status.FAILED
    assert outcome.message.startswith("did not come back within 0.5s after reboot")
    assert not sink.of(events.RebootEvent)


def test_a_service_that_will_not_stay_up_fails_verify_with_both_values(tmp_path: Path) -> None:
    hosts = lab_fleet(tmp_path, 1, {0: {"service_stops_after_start": ["svagents"]}})
    summary, sink = run_on_lab(hosts, asr_playbook(tmp_path))
    assert summary.hosts["web000"].status == Status.FAILED
    step = sink.steps("web000")[SVAGENTS]
    assert (step.status, step.message) == (
        Status.FAILED, "verify: service 'svagents': expected Running, found Stopped")
    assert lab(hosts[0]).op_log.count("set_service") == 1


class CountingTransport(LabTransport):
    """The real LabTransport, counting connection attempts per host."""

    opens: dict[str, int] = {}

    def open(self) -> None:
        """Count, then connect for real."""
        CountingTransport.opens[self.host.name] = CountingTransport.opens.get(
            self.host.name, 0) + 1
        super().open()


def _attempts(hosts: list[Host], tmp_path: Path, retries: int) -> tuple[Any, dict[str, int]]:
    from pushinstall.engine import RunOptions, run_fleet

    CountingTransport.opens = {}
    summary = run_fleet(hosts, asr_playbook(tmp_path, retries=retries),
                        RunOptions(backoff=FAST), [ListSink()], CountingTransport)
    return summary, CountingTransport.opens


def test_connect_retries_transient_errors_only(tmp_path: Path) -> None:
    hosts = lab_fleet(tmp_path, 3, {0: {"refuse_first_connects": 2},
                                    1: {"bad_credentials": True},
                                    2: {"refuse_first_connects": 5}})
    summary, opens = _attempts(hosts, tmp_path, retries=2)
    assert summary.hosts["web000"].status == Status.CHANGED
    assert opens["web000"] == 3                         # two resets, then in
    bad = summary.hosts["web001"]
    assert bad.status == Status.UNREACHABLE and opens["web001"] == 1   # never retried
    assert "check the username and password" in bad.message
    assert summary.hosts["web002"].status == Status.UNREACHABLE
    assert opens["web002"] == 3                         # 1 + retries, then given up
    assert summary.exit_code == 4


def test_a_non_idempotent_op_is_never_resent_after_a_transient_error(tmp_path: Path) -> None:
    hosts = lab_fleet(tmp_path, 2, {0: {"drop_connection_on": ["run_process"]},
                                    1: {"drop_connection_on": ["batch"]}})
    summary, sink = run_on_lab(hosts, asr_playbook(tmp_path, retries=1))
    assert lab(hosts[0]).op_log.count("run_process") == 1      # the extract, sent once
    assert summary.hosts["web000"].status == Status.FAILED
    assert "connection reset" in sink.steps("web000")["Extract UnifiedAgent.exe"].message
    assert lab(hosts[1]).op_log == ["batch", "batch"]          # the gather is asked again
    assert summary.hosts["web001"].status == Status.UNREACHABLE


def test_when_false_skips_and_when_sees_facts(tmp_path: Path) -> None:
    playbook = asr_playbook(tmp_path)
    by_name = {s.name: s for s in playbook.steps}
    app = "InMage Scout Application Service running"
    by_name[app].when = "facts.os.hostname != 'WEB000'"
    by_name[GATE].when = "facts.steps['Staging directory'] is defined"
    summary, sink = run_on_lab(lab_fleet(tmp_path, 1), playbook)
    steps = sink.steps("web000")
    assert steps[app].status == Status.SKIPPED
    assert steps[GATE].status == Status.OK
    assert summary.hosts["web000"].counts[Status.SKIPPED] == SKIPPED_STEPS + 1


def test_undefined_variable_fails_that_host_only(tmp_path: Path) -> None:
    playbook = asr_playbook(tmp_path)
    service = next(s for s in playbook.steps if s.name == SVAGENTS)
    service.args = {**service.args, "name": "{{ service_name }}"}
    hosts = lab_fleet(tmp_path, 2, host_vars={0: {"service_name": "svagents"}})
    summary, sink = run_on_lab(hosts, playbook)
    assert summary.hosts["web000"].status == Status.CHANGED
    assert summary.hosts["web001"].status == Status.FAILED
    assert "undefined variable 'service_name'" in sink.steps("web001")[SVAGENTS].message
    assert "set_service" not in lab(hosts[1]).op_log


def test_secrets_never_leave_and_no_log_hides_output(tmp_path: Path) -> None:
    hosts = lab_fleet(tmp_path, 1, {0: {"configurator_exit_code": 14}})
    playbook = asr_playbook(tmp_path)
    register = next(s for s in playbook.steps if s.name.startswith("Register"))
    summary, sink = run_on_lab(hosts, playbook)
    step = sink.steps("web000")[register.name]
    assert step.status == Status.FAILED and "exit 14" in step.message
    host = lab(hosts[0])
    written = [c for c in host.calls if c["op"] == "write_secret"]
    assert len(written) == 1 and written[0]["args"]["content"] == MASK   # sent, as data
    for text in (repr(sink.events), repr(summary), repr(host.calls)):
        assert PASSPHRASE not in text

    register.no_log = True
    summary, sink = run_on_lab(hosts, playbook)
    step = sink.steps("web000")[register.name]
    assert (step.status, step.diff, step.message) == (
        Status.FAILED, "", "(output hidden: no_log)")


def test_host_deadline_stops_a_slow_host(tmp_path: Path) -> None:
    hosts = lab_fleet(tmp_path, 1, {0: {"latency_ms": 200}})
    summary, _ = run_on_lab(hosts, asr_playbook(tmp_path, host_timeout=0.3, retries=0))
    outcome = summary.hosts["web000"]
    assert outcome.status == Status.FAILED
    assert "deadline" in outcome.message or "timeout" in outcome.message
