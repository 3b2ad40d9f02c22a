"""The per-host pipeline: gather once, plan, apply what changes, reboot, verify once.

Runs against the stand-in host of test_engine_kit.py (see why there): a real Windows host is
not available, and the real lab had not landed when this was written.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_engine_kit import STUB_TYPES, UA_PRODUCT, StubLab, asr_playbook, stubs  # noqa: F401

from pushinstall import events
from pushinstall.engine import RunOptions, RunSummary, run_fleet
from pushinstall.engine_support import Backoff
from pushinstall.errors import RemoteOpFailed
from pushinstall.inventory import Host
from pushinstall.playbook import Playbook, RebootPolicy, Step
from pushinstall.secret import MASK, Secret

pytestmark = pytest.mark.usefixtures("stubs")
FAST = Backoff(initial=0.01, maximum=0.05)


class ListSink:
    def __init__(self) -> None:
        self.events: list[events.Event] = []
        self.closed = False

    def emit(self, event: events.Event) -> None:
        self.events.append(event)

    def close(self) -> None:
        self.closed = True

    def steps(self, host: str) -> dict[str, events.StepResult]:
        return {e.step: e for e in self.events
                if isinstance(e, events.StepResult) and e.host == host}


def run(hosts: list[Host], playbook: Playbook, lab: StubLab, **options: Any,
        ) -> tuple[RunSummary, ListSink]:
    sink = ListSink()
    summary = run_fleet(hosts, playbook, RunOptions(backoff=FAST, **options), [sink],
                        transport_factory=lab.factory)
    assert sink.closed
    return summary, sink


def one(lab_vars: dict[str, Any] | None = None, **host_vars: Any) -> list[Host]:
    return [Host("web01", vars={"lab": lab_vars or {}, **host_vars})]


def test_run_converges_then_second_run_changes_nothing_and_gathers_in_one_call() -> None:
    lab = StubLab()
    summary, sink = run(one(), asr_playbook(), lab)
    assert summary.hosts["web01"].status == events.CHANGED and summary.exit_code == 0
    steps = sink.steps("web01")
    assert steps["Install Mobility service"].status == events.CHANGED
    assert steps["Install Mobility service"].diff == f"product {UA_PRODUCT}: absent -> installed"
    # the installer started svagents: re-probed before its apply, found ok, nothing sent
    assert steps["Service svagents"].status == events.OK
    assert lab.hosts["web01"].op_log == ["batch", "run_process", "batch", "batch"]

    lab.hosts["web01"].op_log.clear()
    summary, sink = run(one(), asr_playbook(), lab)
    assert summary.hosts["web01"].status == events.OK
    assert summary.hosts["web01"].counts == {events.OK: 3}
    assert lab.hosts["web01"].op_log == ["batch"]  # the whole gather is ONE call


def test_check_mode_changes_nothing_and_reports_drift() -> None:
    lab = StubLab()
    summary, sink = run(one(), asr_playbook(), lab, mode="check")
    host = lab.hosts["web01"]
    assert host.op_log == ["batch"] and host.products == {} and host.services == {}
    assert summary.hosts["web01"].status == events.DRIFTED and summary.exit_code == 2
    assert sink.steps("web01")["Service svagents"].diff == "service 'svagents': absent -> Running"

    run(one(), asr_playbook(), lab)
    summary, _ = run(one(), asr_playbook(), lab, mode="check")
    assert summary.hosts["web01"].status == events.COMPLIANT and summary.exit_code == 0

    host.services["svagents"] = "Stopped"
    summary, sink = run(one(), asr_playbook(), lab, mode="check")
    assert summary.exit_code == 2
    drifted = [e for e in sink.events if isinstance(e, events.StepResult)
               and e.status == events.DRIFTED]
    assert [(e.host, e.step) for e in drifted] == [("web01", "Service svagents")]

    summary, _ = run(one(), asr_playbook(), lab, mode="check", remediate=True)
    assert summary.hosts["web01"].status == events.CHANGED
    assert host.services["svagents"] == "Running"


def test_installer_failure_fails_the_host_and_stops_its_steps() -> None:
    lab = StubLab()
    summary, sink = run(one({"installer_exit_code": 14}), asr_playbook(), lab)
    outcome = summary.hosts["web01"]
    assert outcome.status == events.FAILED and summary.exit_code == 2
    install = sink.steps("web01")["Install Mobility service"]
    assert install.status == events.FAILED
    assert install.message == "exit 14: invalid passphrase or CS endpoint"
    assert "Service svagents" not in sink.steps("web01")


@pytest.mark.parametrize(("on_pending", "reboot", "status", "reboots"), [
    ("fail", RebootPolicy(), events.FAILED, 0),
    ("warn", RebootPolicy(), events.CHANGED, 0),
    ("reboot", RebootPolicy(), events.CHANGED, 1),
    ("reboot", RebootPolicy(mode="never"), events.REBOOT_PENDING, 0),
    ("reboot", RebootPolicy(after_reboot="stop"), events.REBOOT_PENDING, 1),
])
def test_pending_reboot_policies(on_pending: str, reboot: RebootPolicy, status: str,
                                 reboots: int) -> None:
    lab = StubLab()
    playbook = asr_playbook(reboot=reboot)
    summary, sink = run(one({"pending_reboot": True}, on_pending=on_pending), playbook, lab)
    assert summary.hosts["web01"].status == status
    reboot_events = [e for e in sink.events if isinstance(e, events.RebootEvent)]
    assert len(reboot_events) == reboots
    assert lab.hosts["web01"].op_log.count("reboot") == reboots
    if reboots:
        assert reboot_events[0].boot_time_before != reboot_events[0].boot_time_after
    if status == events.REBOOT_PENDING:
        assert summary.exit_code == 0
        assert sink.steps("web01")["Service svagents"].status == events.SKIPPED
    if reboot.after_reboot == "continue" and reboots:
        assert sink.steps("web01")["Install Mobility service"].status == events.CHANGED


def test_reboot_longer_than_the_timeout_fails_the_host() -> None:
    lab = StubLab()
    playbook = asr_playbook(reboot=RebootPolicy(timeout=0.3))
    summary, sink = run(one({"pending_reboot": True, "reboot_seconds": 3}), playbook, lab)
    outcome = summary.hosts["web01"]
    assert outcome.status == events.FAILED
    assert outcome.message.startswith("did not come back within 0.3s after reboot")
    assert not [e for e in sink.events if isinstance(e, events.RebootEvent)]


def test_service_that_will_not_stay_up_fails_verify_with_both_values() -> None:
    lab = StubLab()
    playbook = asr_playbook()
    playbook.steps = [playbook.steps[2]]
    hosts = one({"service_stops_after_start": ["svagents"]})
    lab.host(hosts[0]).services["svagents"] = "Stopped"
    summary, sink = run(hosts, playbook, lab)
    assert summary.hosts["web01"].status == events.FAILED
    results = [e for e in sink.events if isinstance(e, events.StepResult)]
    assert [r.status for r in results] == [events.CHANGED, events.FAILED]
    assert results[1].message == "verify: service 'svagents': expected Running, found Stopped"
    assert summary.hosts["web01"].counts == {events.CHANGED: 0, events.FAILED: 1}
    assert lab.hosts["web01"].op_log == ["batch", "set_service", "batch"]


def test_connect_retries_transient_errors_only() -> None:
    lab = StubLab()
    summary, _ = run(one({"refuse_first_opens": 2}), asr_playbook(retries=3), lab)
    assert summary.hosts["web01"].status == events.CHANGED
    assert lab.hosts["web01"].opens == 3

    lab = StubLab()
    summary, _ = run(one({"bad_credentials": True}), asr_playbook(retries=3), lab)
    outcome = summary.hosts["web01"]
    assert outcome.status == events.UNREACHABLE and summary.exit_code == 4
    assert lab.hosts["web01"].opens == 1
    assert "check the password" in outcome.message

    lab = StubLab()
    summary, _ = run(one({"refuse_first_opens": 5}), asr_playbook(retries=2), lab)
    assert summary.hosts["web01"].status == events.UNREACHABLE
    assert lab.hosts["web01"].opens == 3


def test_a_non_idempotent_op_is_never_resent_after_a_transient_error() -> None:
    lab = StubLab()
    summary, sink = run(one({"drop_after_op": "run_process"}), asr_playbook(retries=3), lab)
    assert lab.hosts["web01"].op_log.count("run_process") == 1
    assert summary.hosts["web01"].status == events.FAILED
    assert "connection reset" in sink.steps("web01")["Install Mobility service"].message

    lab = StubLab()  # a dropped answer to the idempotent gather is simply asked again
    summary, _ = run(one({"drop_after_op": "batch"}), asr_playbook(retries=1), lab)
    assert lab.hosts["web01"].op_log == ["batch", "batch"]
    assert summary.hosts["web01"].status == events.UNREACHABLE


def test_when_false_skips_and_when_sees_facts() -> None:
    lab = StubLab()
    playbook = asr_playbook()
    playbook.steps[1].when = "facts.os.hostname != inventory_hostname"
    playbook.steps[2].when = "facts.steps['No pending reboot'].pending.pending == false"
    hosts = one()
    lab.host(hosts[0]).services["svagents"] = "Stopped"
    summary, sink = run(hosts, playbook, lab)
    steps = sink.steps("web01")
    assert steps["Install Mobility service"].status == events.SKIPPED
    assert steps["Service svagents"].status == events.CHANGED
    assert summary.hosts["web01"].counts[events.SKIPPED] == 1


def test_undefined_variable_fails_that_host_only() -> None:
    lab = StubLab()
    playbook = asr_playbook()
    playbook.steps[2] = Step("Service", "service", {"name": "{{ service_name }}"})
    hosts = [Host("a", vars={"service_name": "svagents"}), Host("b")]
    summary, sink = run(hosts, playbook, lab)
    assert summary.hosts["a"].status == events.CHANGED
    assert summary.hosts["b"].status == events.FAILED
    assert "service_name" in sink.steps("b")["Service"].message
    assert "set_service" not in lab.hosts["b"].op_log  # failed at its turn; nothing after it


def test_secrets_are_masked_and_no_log_hides_output(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "Sup3r-Secret-Passphrase"

    def leaky_apply(args: dict[str, Any], ctx: Any) -> Any:
        raise RemoteOpFailed(f"installer said: bad passphrase {secret}", host=ctx.host_name)

    monkeypatch.setattr(STUB_TYPES["package"], "apply", leaky_apply)
    lab = StubLab()
    summary, sink = run(one(asr_passphrase=Secret(secret)), asr_playbook(), lab)
    install = sink.steps("web01")["Install Mobility service"]
    assert install.status == events.FAILED
    assert install.message == f"installer said: bad passphrase {MASK}"
    assert secret not in repr(sink.events) and secret not in repr(summary)

    playbook = asr_playbook()
    playbook.steps[1].no_log = True
    _, sink = run(one(asr_passphrase=Secret(secret)), playbook, StubLab())
    install = sink.steps("web01")["Install Mobility service"]
    assert (install.status, install.diff, install.message) == (
        events.FAILED, "", "(output hidden: no_log)")


def test_host_deadline_stops_a_slow_host() -> None:
    lab = StubLab(latency=0.2)
    summary, _ = run(one(), asr_playbook(host_timeout=0.3, retries=0), lab)
    outcome = summary.hosts["web01"]
    assert outcome.status == events.FAILED
    assert "deadline" in outcome.message or "timeout" in outcome.message
