"""The fleet: many hosts at once, bounded by forks, in serial batches, interruptible.

Runs against the stand-in hosts of test_engine_kit.py (see why there).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pytest
from test_engine import ListSink
from test_engine_kit import StubLab, StubTransport, asr_playbook, hosts, stubs  # noqa: F401

from pushinstall import events
from pushinstall.engine import RunOptions, batch_sizes, exit_code_for, run_fleet
from pushinstall.engine_support import Backoff
from pushinstall.inventory import Host
from pushinstall.playbook import RebootPolicy

pytestmark = pytest.mark.usefixtures("stubs")
FAST = Backoff(initial=0.01, maximum=0.05)


def test_batch_sizes_follow_ansible_serial() -> None:
    assert batch_sizes([], 7) == [7]
    assert batch_sizes([3], 7) == [3, 3, 1]
    assert batch_sizes([1, 10, "25%"], 100) == [1, 10, 25, 25, 25, 14]
    assert batch_sizes(["10%"], 5) == [1, 1, 1, 1, 1]   # a percentage is at least one host


def test_exit_codes() -> None:
    assert exit_code_for([events.OK, events.CHANGED, events.REBOOT_PENDING]) == 0
    assert exit_code_for([events.OK, events.UNREACHABLE]) == 4
    assert exit_code_for([events.UNREACHABLE, events.FAILED]) == 2
    assert exit_code_for([events.COMPLIANT, events.DRIFTED]) == 2
    assert exit_code_for([events.OK], interrupted=True) == 130


def test_200_hosts_with_mixed_faults_each_end_right_and_others_unaffected() -> None:
    faults: dict[int, dict[str, Any]] = {
        3: {"unreachable": True},
        17: {"bad_credentials": True},
        42: {"installer_exit_code": 14},
        60: {"pending_reboot": True},                       # on_pending reboot: rebooted
        61: {"pending_reboot": True, "reboot_seconds": 5},  # longer than the 0.5 s timeout
        62: {"pending_reboot": True},                       # on_pending fail (host var)
        63: {"pending_reboot": True},                       # on_pending warn (host var)
        99: {"service_stops_after_start": ["svagents"], "installer_exit_code": 3010},
        150: {"refuse_first_opens": 2},                     # transient: retried, then fine
    }
    fleet = hosts(200, faults)
    fleet[62].vars["on_pending"] = "fail"
    fleet[63].vars["on_pending"] = "warn"
    lab = StubLab(latency=0.002)
    sink = ListSink()
    started = time.monotonic()
    summary = run_fleet(fleet, asr_playbook(reboot=RebootPolicy(timeout=0.5)),
                        RunOptions(forks=50, backoff=FAST), [sink], lab.factory)
    elapsed = time.monotonic() - started
    expected = {3: events.UNREACHABLE, 17: events.UNREACHABLE, 42: events.FAILED,
                60: events.CHANGED, 61: events.FAILED, 62: events.FAILED, 63: events.CHANGED,
                99: events.FAILED, 150: events.CHANGED}
    for index, host in enumerate(fleet):
        assert summary.hosts[host.name].status == expected.get(index, events.CHANGED), host.name
    assert "did not come back" in summary.hosts["web061"].message
    assert summary.totals == {events.CHANGED: 194, events.FAILED: 4, events.UNREACHABLE: 2}
    assert summary.exit_code == 2
    finished = [e for e in sink.events if isinstance(e, events.HostFinished)]
    assert len(finished) == 200 and isinstance(sink.events[-1], events.RunFinished)
    rebooted = sorted(e.host for e in sink.events if isinstance(e, events.RebootEvent))
    assert rebooted == ["web060", "web099"]  # warn (63) goes on without a reboot
    assert elapsed < 10


@pytest.mark.parametrize(("serial", "max_fail", "fatal", "started"), [
    ([2, 4], 30.0, False, 6),      # batch 2 (hosts 2-5): 2 of 4 failed = 50% > 30%: stop
    ([2, 4], 50.0, False, 10),     # 50% is not more than 50%: Ansible goes on
    ([2, 4], None, True, 6),       # any_errors_fatal: the first failing batch ends the run
    (["20%"], 0.0, False, 4),      # batches of 2; hosts 2, 3 fail in the second
])
def test_serial_and_max_fail_percentage_stop_where_ansible_would(
        serial: list[int | str], max_fail: float | None, fatal: bool, started: int) -> None:
    fleet = hosts(10, {2: {"unreachable": True}, 3: {"installer_exit_code": 14}})
    playbook = asr_playbook(serial=serial, max_fail_percentage=max_fail,
                            any_errors_fatal=fatal)
    sink = ListSink()
    summary = run_fleet(fleet, playbook, RunOptions(backoff=FAST, forks=4), [sink],
                        StubLab().factory)
    ran = [e.host for e in sink.events if isinstance(e, events.HostStarted)]
    assert ran == [h.name for h in fleet[:started]]
    for host in fleet[started:]:
        outcome = summary.hosts[host.name]
        assert outcome.status == events.SKIPPED
        assert outcome.message.startswith("not started: ")
    assert summary.exit_code == 2


def test_forks_bound_the_hosts_in_flight() -> None:
    lab = StubLab(latency=0.01)
    in_flight = 0
    peak = 0
    lock = threading.Lock()

    class Counting(StubTransport):
        def open(self) -> None:
            nonlocal in_flight, peak
            with lock:
                in_flight += 1
                peak = max(peak, in_flight)
            super().open()

        def close(self) -> None:
            nonlocal in_flight
            with lock:
                in_flight -= 1

    def factory(host: Host) -> Counting:
        return Counting(lab.host(host), lab.latency)

    summary = run_fleet(hosts(40), asr_playbook(), RunOptions(forks=5, backoff=FAST), [],
                        factory)
    assert summary.totals == {events.CHANGED: 40}
    assert peak == 5


def test_ctrl_c_stops_launching_and_still_summarises() -> None:
    lab = StubLab(latency=0.05)
    sink = ListSink()
    fleet = hosts(30)

    def interrupt_soon() -> None:
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_soon, daemon=True).start()
    summary = run_fleet(fleet, asr_playbook(), RunOptions(forks=3, backoff=FAST), [sink],
                        lab.factory)
    assert summary.interrupted and summary.exit_code == 130
    statuses = [summary.hosts[h.name].status for h in fleet]
    assert statuses[0] == events.CHANGED          # finished before the Ctrl-C
    assert statuses[-1] == events.SKIPPED         # never started
    assert summary.hosts[fleet[-1].name].message == "not started: interrupted"
    assert len(summary.hosts) == 30
    last = sink.events[-1]
    assert isinstance(last, events.RunFinished) and last.interrupted and last.exit_code == 130
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
