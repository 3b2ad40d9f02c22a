"""Wire benchmark: what a compliance check and a file push cost on each transport. Prints,
asserts nothing.

    python bench/wire.py [--hosts 5] [--repeat 3] [--push-mb 50] [--transports psrp,winrm,ssh]
                         [--push-lab process|same|both] [--no-check]
                         [--winrs-refused true|receiver]

For each transport and each of `--repeat` rounds, N fresh lab hosts are served on loopback by
`pushinstall.lab.serve` (real pypsrp, pywinrm and asyncssh clients against the lab's WS-Man and
SSH endpoints, NTLM with message encryption) and the engine's `check` of the shipped ASR
playbook runs twice: first contact (nothing cached on the host, nothing remembered by the
controller) and a later run. The endpoints' counters give, per host, the requests and bytes
sent to the host and back; the table shows the median over the rounds of each round's mean.

Then, `--repeat` times, a fresh host receives a `--push-mb` file through the transport's
`put_file` (file_begin, the file on the WinRS receiver's stdin, file_end), after one call (as
in a run, the agent is defined before any push). By default (`--push-lab process`) that host
is served by a `pushinstall lab serve` process, as in bench/sweep.py, so this process's CPU
(resource.getrusage, every thread) is the controller's cost alone, what it would spend
against a Windows host; the lab server's CPU is printed beside it (on this machine the two
share the cores, and the wall figure is only what the machine gave them). `--push-lab same`
serves the host in THIS process (both ends in one interpreter: one GIL, the CPU is both
ends'), `both` does each. Each push prints its wall, MB/s, CPU, the HTTP requests and the
bytes of their bodies as sent (the transport's counter: after message encryption), and the
medians follow. With `--winrs-refused` the hosts refuse the WinRS receiver and the push takes
its fallback, `file_chunk` calls over the agent session. `--no-check` pushes only.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from sweep import Servers  # bench/ is this script's directory: sys.path[0]

from pushinstall.engine import RunOptions, run_fleet
from pushinstall.inventory import load_inventory
from pushinstall.lab.connect import PROCESS_HOOKS, make_transport, open_transport
from pushinstall.lab.serve import LabServer, lab_hosts
from pushinstall.model import Host, Playbook
from pushinstall.playbook import load_playbook
from pushinstall.remote import ops, receiver
from pushinstall.transports.base import Transport
from pushinstall.transports.push import PushStats

ROOT = Path(__file__).resolve().parents[1]
PLAYBOOK = ROOT / "playbooks" / "asr-mobility.yml"
LAB_SECRETS = ROOT / "inventories" / "lab-secrets"
COUNTERS = ("connections", "requests", "bytes_in", "bytes_out")


def fleet_inventory(directory: Path, count: int, refused: bool | str = False) -> Path:
    """An inventory of `count` plain lab hosts with the shipped lab inventory's vars (and the
    lab var `winrs_refused: refused` when set)."""
    document = {"all": {
        "vars": {
            "transport": "lab", "username": "LAB\\Administrator",
            "password": {"file": str(LAB_SECRETS / "password.txt")},
            "cs_endpoint": "10.0.0.115",
            "asr_passphrase": {"file": str(LAB_SECRETS / "passphrase.txt")},
            "asr_installer_share": "\\\\labshare\\asr",
        },
        "hosts": {f"bench{i:03d}": {"lab": {"winrs_refused": refused}} if refused else None
                  for i in range(1, count + 1)},
    }}
    path = directory / "bench.yml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def snapshot(server: LabServer) -> dict[str, dict[str, int]]:
    """Every served host's counters now."""
    return {s.name: server.counters(s.name) for s in server.served}


def measure_check(server: LabServer, hosts: list[Host], playbook: Playbook) -> dict[str, float]:
    """Run the engine's check once; the mean per host of what it cost on the wire."""
    before = snapshot(server)
    started = time.monotonic()
    summary = run_fleet(hosts, playbook, RunOptions(mode="check", hooks=PROCESS_HOOKS), [],
                        make_transport)
    wall = time.monotonic() - started
    after = snapshot(server)
    mean = {k: statistics.mean(after[h.name][k] - before[h.name][k] for h in hosts)
            for k in COUNTERS}
    mean["wall"] = wall
    mean["exit"] = summary.exit_code
    return mean


@dataclass(frozen=True)
class Push:
    """One timed `put_file`, seen from the controller."""

    seconds: float
    cpu: float           # this process (every thread) during the push
    server_cpu: float    # the lab server process (lab in its own process only)
    requests: int | None   # HTTP requests (psrp, winrm)
    bytes_sent: int | None  # their bodies as sent (after message encryption)
    size: int
    way: str

    @property
    def mb_per_s(self) -> float:
        """The file's MB (10**6 bytes) per second of wall."""
        return self.size / self.seconds / 1e6

    def describe(self) -> str:
        """One printed line."""
        server = (f" (lab server {self.server_cpu:.2f} s)" if self.server_cpu else
                  " (both ends)")
        wire = ("" if self.requests is None or self.bytes_sent is None else
                f", {self.requests} requests, {self.bytes_sent / 1e6:.1f} MB on the wire "
                f"(x{self.bytes_sent / self.size:.2f})")
        return (f"{self.seconds:.2f} s, {self.mb_per_s:.1f} MB/s, controller CPU "
                f"{self.cpu:.2f} s{server}{wire}{self.way}")


def cpu_seconds() -> float:
    """This process's CPU so far, every thread (resource.getrusage)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed_push(transport: Transport, local: Path, sha256: str,
               server_cpu: Callable[[], float] = lambda: 0.0) -> Push:
    """One `put_file` of `local` through the opened `transport`, measured; it is closed.
    A call goes first, as in a run (the gather defines the agent before any push), and the
    stream's head (the packed agent core, made once per process) is made before timing."""
    try:
        transport.call(ops.request("facts", queries=[{"id": "os", "kind": "os"}]))
        receiver.prefix()
        cpu0, server0, started = cpu_seconds(), server_cpu(), time.monotonic()
        result = transport.put_file(local, "C:\\Temp\\bench\\push.bin", sha256)
        seconds = time.monotonic() - started
        cpu, server = cpu_seconds() - cpu0, server_cpu() - server0
    finally:
        transport.close()
    if not result.get("changed"):
        raise SystemExit(f"the push did not change the file: {result}")
    stats = getattr(transport, "last_push", None)    # psrp, winrm: their HTTP traffic
    if not isinstance(stats, PushStats):
        stats = PushStats(local.stat().st_size, seconds)
    return Push(seconds, cpu, server, stats.requests, stats.bytes_sent, stats.size,
                f", {stats.way}" if stats.way else "")


def push_same_process(transport: str, local: Path, sha256: str, directory: Path,
                      refused: bool | str) -> Push:
    """Push to a fresh lab host served by THIS process (both ends share one GIL)."""
    state = directory / "state"
    os.environ["PUSHINSTALL_STATE_DIR"] = str(state)
    inventory = load_inventory([str(fleet_inventory(directory, 1, refused))])
    written = directory / "served.yml"
    with LabServer(lab_hosts(inventory), directory / "served.d", state_dir=state,
                   transport=transport) as server:
        server.write_inventory(written, inventory)
        host = next(iter(load_inventory([str(written)]).hosts.values()))
        return timed_push(open_transport(host, state), local, sha256)


def push_lab_process(transport: str, local: Path, sha256: str, directory: Path,
                     refused: bool | str) -> Push:
    """Push to a fresh lab host served by a `pushinstall lab serve` process: this process's
    CPU is the controller's alone, as against a Windows host."""
    from pushinstall.runner import resolve_run_secrets
    from pushinstall.transports.factory import open_transport as open_real

    state = directory / "state"
    with Servers([fleet_inventory(directory, 1, refused)], state, transport) as served:
        hosts = list(load_inventory([str(path) for path in served.written]).hosts.values())
        resolve_run_secrets(hosts, load_playbook(str(PLAYBOOK)))
        return timed_push(open_real(hosts[0]), local, sha256, served.cpu_seconds)


def bench_push(transport: str, local: Path, repeat: int, lab: str, work: Path,
               refused: bool | str) -> None:
    """`repeat` pushes of `local` to fresh hosts, each printed, then their medians."""
    sha256 = hashlib.sha256(local.read_bytes()).hexdigest()
    push = push_lab_process if lab == "process" else push_same_process
    where = "lab in its own process" if lab == "process" else "lab in this process"
    runs = []
    for round_ in range(repeat):
        directory = work / f"push-{transport}-{lab}-{round_}"
        directory.mkdir()
        runs.append(push(transport, local, sha256, directory, refused))
        print(f"  {transport:<6} push {local.stat().st_size / 1e6:.0f} MB, {where}: "
              f"{runs[-1].describe()}", flush=True)
    text = (f"{statistics.median(r.mb_per_s for r in runs):.1f} MB/s, controller CPU "
            f"{statistics.median(r.cpu for r in runs):.2f} s")
    text += (f", lab server CPU {statistics.median(r.server_cpu for r in runs):.2f} s"
             if lab == "process" else " (both ends)")
    if all(r.bytes_sent is not None and r.requests is not None for r in runs):
        text += (f", x{statistics.median((r.bytes_sent or 0) / r.size for r in runs):.2f} on "
                 f"the wire, {statistics.median(r.requests or 0 for r in runs):.0f} requests")
    print(f"  {transport:<6} median of {repeat}, {where}: {text}", flush=True)


def bench_transport(transport: str, count: int, repeat: int, work: Path,
                    refused: bool | str = False) -> dict[str, dict[str, float]]:
    """`repeat` rounds of fresh hosts written as `transport`: the check on first contact and
    on a later run. Returns the medians by run."""
    playbook = load_playbook(str(PLAYBOOK))
    runs: dict[str, list[dict[str, float]]] = {"first contact": [], "later run": []}
    for round_ in range(repeat):
        directory = work / f"{transport}-{round_}"
        directory.mkdir()
        state = directory / "state"
        # lab hosts, the agents the controller saw
        os.environ["PUSHINSTALL_STATE_DIR"] = str(state)
        inventory = load_inventory([str(fleet_inventory(directory, count, refused))])
        written = directory / "served.yml"
        with LabServer(lab_hosts(inventory), directory / "served.d", state_dir=state,
                       transport=transport) as server:
            server.write_inventory(written, inventory)
            hosts = list(load_inventory([str(written)]).hosts.values())
            for run in runs.values():
                run.append(measure_check(server, hosts, playbook))
    medians = {name: {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
               for name, rounds in runs.items()}
    for name, row in medians.items():
        print(f"  {transport:<6} {name:<14} {row['requests']:>5.1f} {row['bytes_in']:>10,.0f} "
              f"{row['bytes_out']:>10,.0f} {row['connections']:>5.1f} {row['wall']:>7.2f} "
              f"{row['exit']:>4.0f}")
    return medians


def main() -> None:
    """Parse arguments and run the benchmark for each transport."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--hosts", type=int, default=5, help="lab hosts per transport")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of fresh hosts (median)")
    parser.add_argument("--push-mb", type=int, default=50, help="size of the pushed file, "
                        "0 to skip")
    parser.add_argument("--transports", default="psrp,winrm,ssh")
    parser.add_argument("--push-lab", choices=["process", "same", "both"], default="process",
                        help="where the pushes' lab host is served: a `pushinstall lab serve` "
                             "process (the controller's cost alone), this process, or both")
    parser.add_argument("--no-check", action="store_true", help="the push only")
    parser.add_argument("--winrs-refused", choices=["true", "receiver"], default=None,
                        help="the lab hosts refuse the WinRS push receiver (lab var "
                             "winrs_refused): the push's fallback, file_chunk calls")
    args = parser.parse_args()
    refused: bool | str = True if args.winrs_refused == "true" else args.winrs_refused or False
    os.environ.pop("PUSHINSTALL_LAB_WIRE", None)
    work = Path(tempfile.mkdtemp(prefix="pushinstall-bench-wire-"))
    try:
        push = None
        if args.push_mb > 0:
            push = work / "push.bin"
            push.write_bytes(os.urandom(args.push_mb * 1_000_000))
        transports = [name.strip() for name in args.transports.split(",") if name.strip()]
        if not args.no_check:
            print(f"compliance check, per host: mean of {args.hosts} hosts, median of "
                  f"{args.repeat} rounds (exit 2: the fresh hosts drifted)")
            print(f"  {'':<6} {'run':<14} {'reqs':>5} {'bytes in':>10} {'bytes out':>10} "
                  f"{'conns':>5} {'wall s':>7} {'exit':>4}")
            for transport in transports:
                bench_transport(transport, args.hosts, args.repeat, work, refused)
        if push is not None:
            print(f"push of {args.push_mb} MB to a fresh host, {args.repeat} rounds "
                  f"(load average {os.getloadavg()[0]:.1f})", flush=True)
            labs = ["process", "same"] if args.push_lab == "both" else [args.push_lab]
            for lab in labs:
                for transport in transports:
                    bench_push(transport, push, args.repeat, lab, work, refused)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
