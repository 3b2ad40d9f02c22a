"""Deadlines always end a WS-Man host (issue 13): against a real server on 127.0.0.1 that drips
one header line every 0.1 s forever (tests/drip_server.py), through the real psrp and winrm
transports (pypsrp, pywinrm, requests, urllib3 over a real socket) and a real `pushinstall
run`: the exchange ends at the host deadline (or connect_timeout + read_timeout) plus the
grace, with a message that says why, and nothing keeps running after.

Scaled down: deadlines of half a second (a host_timeout of 1 s, its least) and a grace of half
a second (`grace`: the product's is DEADLINE_GRACE, 2 s) prove the same bound as seconds would;
every read still gets a byte well within its read timeout. The run is `pushinstall run` in this
process (cli_kit.cli), so the shorter grace holds there too. The read timeout is the product's
least, 3 s (endpoint_of), so the one test without a deadline takes that."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_kit import cli
from drip_server import DripProxy, DripServer
from kit import OS_FACTS, Wire

from pushinstall.errors import TransportTimeout
from pushinstall.model import Connection, Host
from pushinstall.secret import Secret
from pushinstall.transports import wsman_common
from pushinstall.transports.deadline import io_deadline
from pushinstall.transports.psrp import PSRPTransport
from pushinstall.transports.winrm import WinRMTransport

TRANSPORTS = {"psrp": PSRPTransport, "winrm": WinRMTransport}
MARGIN = 2.0   # thread start-up, the last drip, a loaded 2-core machine
DEADLINE = 0.5  # a host's or a step's deadline, from the call


@pytest.fixture
def drip() -> Iterator[DripServer]:
    with DripServer(interval=0.1) as server:
        yield server


@pytest.fixture
def grace(monkeypatch: pytest.MonkeyPatch) -> float:
    """The grace an exchange gets past its deadline, shortened in this process to 0.5 s."""
    monkeypatch.setattr(wsman_common, "DEADLINE_GRACE", 0.5)
    return wsman_common.DEADLINE_GRACE


def _host(port: int, transport: str, read_timeout: float = 60.0,
          connect_timeout: float = 1.0) -> Host:
    return Host("drip", connection=Connection(
        transport=transport, address="127.0.0.1", port=port, auth="ntlm", tls=False,
        username="admin", password=Secret("pw-drip"), connect_timeout=connect_timeout,
        read_timeout=read_timeout))


def _open_in_thread(transport: PSRPTransport | WinRMTransport,
                    deadline_s: float | None) -> tuple[threading.Thread, list[BaseException]]:
    """open() in its own thread (as the engine runs a host), under a host deadline."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            if deadline_s is None:
                transport.open()
            else:
                with io_deadline(time.monotonic() + deadline_s):
                    transport.open()
        except BaseException as error:
            errors.append(error)
        finally:
            transport.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


@pytest.mark.parametrize("kind", sorted(TRANSPORTS))
def test_a_dripping_server_ends_at_the_host_deadline(drip: DripServer, grace: float,
                                                     kind: str) -> None:
    transport = TRANSPORTS[kind](_host(drip.port, kind))
    started = time.monotonic()
    thread, errors = _open_in_thread(transport, DEADLINE)
    thread.join(DEADLINE + grace + MARGIN)
    elapsed = time.monotonic() - started
    assert not thread.is_alive(), f"{kind}: open() still blocked after {elapsed:.1f} s"
    assert drip.accepted >= 1   # it did reach the server and was dripped at
    assert len(errors) == 1 and isinstance(errors[0], TransportTimeout), errors
    message = str(errors[0])
    assert "http://127.0.0.1" in message and "sent no complete answer in time" in message
    assert "the step or host deadline" in message
    assert elapsed >= DEADLINE   # the deadline, not some earlier failure, ended it
    _assert_connections_closed(drip)


@pytest.mark.parametrize("kind", sorted(TRANSPORTS))
def test_without_a_host_deadline_one_exchange_ends_after_connect_plus_read_timeout(
        drip: DripServer, kind: str) -> None:
    transport = TRANSPORTS[kind](_host(drip.port, kind, read_timeout=3.0,
                                       connect_timeout=0.5))   # 0.5 + 3 s
    started = time.monotonic()
    thread, errors = _open_in_thread(transport, None)
    thread.join(3.5 + MARGIN)
    elapsed = time.monotonic() - started
    assert not thread.is_alive(), f"{kind}: open() still blocked after {elapsed:.1f} s"
    assert len(errors) == 1 and isinstance(errors[0], TransportTimeout), errors
    assert "connect_timeout + read_timeout" in str(errors[0])
    assert elapsed >= 3.5 - 0.1
    _assert_connections_closed(drip)


@pytest.mark.parametrize("kind", sorted(TRANSPORTS))
def test_a_host_that_stalls_mid_call_ends_at_the_call_deadline(wire: Wire, grace: float,
                                                              kind: str) -> None:
    """Opened fine through a proxy to the lab's endpoint, then every answer drips: the call
    ends at its timeout (the step's deadline) plus the grace, and the transport can still
    be closed in bounded time."""
    wire.serve("lab-web01")
    served = wire.endpoint.address("lab-web01")
    with DripProxy(served.address, served.http_port, interval=0.1) as proxy:
        host = wire.host("lab-web01", transport=kind, read_timeout=30.0)
        host.connection.address, host.connection.port = "127.0.0.1", proxy.port
        transport = TRANSPORTS[kind](host)
        transport.open()
        assert transport.call(OS_FACTS, timeout=10)["ok"]   # the proxy passes answers on
        proxy.dripping.set()
        started = time.monotonic()
        with pytest.raises(TransportTimeout) as raised:
            transport.call(OS_FACTS, timeout=DEADLINE)
        elapsed = time.monotonic() - started
        assert DEADLINE <= elapsed < DEADLINE + grace + MARGIN, elapsed
        assert "sent no complete answer in time" in str(raised.value)
        assert "the step or host deadline" in str(raised.value)
        with io_deadline(time.monotonic() + DEADLINE):   # as the engine closes a host at its end
            closing = time.monotonic()
            transport.close()
        assert time.monotonic() - closing < DEADLINE + grace + MARGIN


def _assert_connections_closed(drip: DripServer) -> None:
    """The client let go of the socket: the server's next drip fails and it closes too."""
    until = time.monotonic() + 3 * drip.interval + 1
    while drip.open_connections and time.monotonic() < until:
        time.sleep(0.05)
    assert drip.open_connections == 0


PLAYBOOK = """name: drip
hosts: all
settings:
  host_timeout: 1
  retries: 1
steps:
  - name: A directory
    directory:
      path: C:\\\\pushinstall\\\\drip
"""


@pytest.mark.parametrize("kind", sorted(TRANSPORTS))
def test_a_run_with_host_timeout_ends_on_time_against_a_dripping_host(
        drip: DripServer, grace: float, tmp_path: Path, kind: str) -> None:
    (tmp_path / "inv.yml").write_text(
        "all:\n  hosts:\n    drip01:\n"
        f"      address: 127.0.0.1\n      port: {drip.port}\n      transport: {kind}\n"
        "      auth: ntlm\n      username: admin\n      password: {env: DRIP_PASSWORD}\n"
        "      tls: false\n      connect_timeout: 1\n")
    (tmp_path / "drip.yml").write_text(PLAYBOOK)
    started = time.monotonic()
    proc = cli("run", "-i", "inv.yml", "drip.yml", "--jsonl", "events.jsonl", cwd=tmp_path,
               env={"DRIP_PASSWORD": "pw-drip"})
    elapsed = time.monotonic() - started
    # the host deadline, the grace, and the run's own start (files, lab, threads)
    assert elapsed < 1 + grace + 2 * MARGIN, f"the run took {elapsed:.1f} s"
    assert proc.returncode == 4, proc.stderr   # unreachable
    lines = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    finished = [e for e in lines if e.get("kind") == "host_finished"]
    assert len(finished) == 1, finished
    assert finished[0]["host"] == "drip01" and finished[0]["status"] == "unreachable"
    assert "sent no complete answer in time" in finished[0]["message"]
    assert "the step or host deadline" in finished[0]["message"]
    assert "Traceback" not in proc.stderr
    _assert_connections_closed(drip)
