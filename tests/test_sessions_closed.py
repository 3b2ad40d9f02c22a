"""One session per host per run, and none left behind: after a run over real psrp and winrm
clients, the lab's WS-Man endpoint holds no shell (runspace pool or WinRS shell) and no open
TCP connection for any host, whether its steps succeeded, one failed, or the run was
interrupted with Ctrl-C while hosts were in flight."""

from __future__ import annotations

import time

import pytest
from kit import CtrlCSink, Wire, run_asr

from pushinstall import events
from pushinstall.model import Status

NAMES = ["lab-web01", "lab-web02"]


def _left_open(wire: Wire) -> dict[str, tuple[int, int]]:
    """Per host: (shells, open TCP connections) still held by the endpoint, after letting
    the server threads see the clients' closes."""
    deadline = time.monotonic() + 5
    while True:
        left = {name: (wire.endpoint.open_shells(name),
                       wire.endpoint.counters(name).open_connections) for name in NAMES}
        if not any(any(v) for v in left.values()) or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


@pytest.mark.parametrize("kind", ["psrp", "winrm"])
def test_a_run_with_a_failing_step_leaves_no_session_open(wire: Wire, kind: str) -> None:
    summary, _ = run_asr(wire.factory(kind, "ntlm", False), NAMES,
                         {"lab-web02": {"installer_exit_code": 14}})
    assert summary.hosts["lab-web01"].status == Status.CHANGED
    assert summary.hosts["lab-web02"].status == Status.FAILED
    assert all(wire.endpoint.counters(n).connections >= 1 for n in NAMES)
    assert _left_open(wire) == {name: (0, 0) for name in NAMES}


@pytest.mark.parametrize("kind", ["psrp", "winrm"])
def test_an_interrupted_run_leaves_no_session_open(wire: Wire, kind: str) -> None:
    # every op answers 0.3 s late: Ctrl-C lands while both hosts are in flight, pressed on the
    # first step's result (an event, not a timer: a timer that fires before or after the run
    # raises KeyboardInterrupt in the test process itself)
    summary, sink = run_asr(wire.factory(kind, "ntlm", False), NAMES,
                            {name: {"latency_ms": 300} for name in NAMES},
                            CtrlCSink(lambda event: isinstance(event, events.StepResult)))
    assert summary.exit_code == 130
    assert len(sink.of(events.HostStarted)) == len(NAMES)
    assert all(wire.endpoint.counters(n).connections >= 1 for n in NAMES)
    assert _left_open(wire) == {name: (0, 0) for name in NAMES}


@pytest.mark.parametrize("kind", ["psrp", "winrm"])
def test_connections_dropped_mid_run_leave_no_abandoned_shell(wire: Wire, kind: str) -> None:
    # the endpoint cuts the connection each time it answers ensure_directory: the transport
    # reconnects with a new shell for each retry until the step gives up; every shell it lost
    # is closed too, not left to the server's idle timeout (MaxShellsPerUser counts them)
    summary, _ = run_asr(wire.factory(kind, "ntlm", False), NAMES,
                         {name: {"drop_connection_on": ["ensure_directory"]} for name in NAMES})
    assert {summary.hosts[n].status for n in NAMES} <= {Status.FAILED, Status.UNREACHABLE}
    assert all(wire.endpoint.counters(n).connections >= 3 for n in NAMES)
    assert _left_open(wire) == {name: (0, 0) for name in NAMES}
