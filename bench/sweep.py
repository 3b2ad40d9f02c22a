"""Sweep benchmark: the controller's own cost of a compliance check (and a full install) of N
lab hosts over real PSRP, NTLM and message encryption. Prints, asserts nothing.

    python bench/sweep.py [--hosts 100,300,1000] [--big] [--servers 2] [--forks 100]
                          [--workers auto|W] [--latency-ms 0] [--no-install] [--repeat 1]

For each N the hosts are served by `--servers` separate `pushinstall lab serve` processes (each
a share of the inventory, on its own loopback ports), so what this process and its engine
workers spend is the controller's cost alone. The shipped ASR playbook first converges the
fresh hosts (`run`, the full install: wall and op calls per host), then `check` runs on them
(the nightly compliance sweep: wall, controller CPU per host, peak RSS and RSS per host in
flight); `--no-install` checks the fresh hosts instead. The lab servers' own CPU is printed
beside the controller's: on one machine they share its cores. Calls per host come from the
served hosts' op logs, saved when their servers stop; the in-process figure to compare with
is `bench/fleet.py` (no sockets, no crypto).

`--big` adds N = 3000. The machine is shared: run big N rarely, and read every figure as
"on this machine, at that moment".
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PLAYBOOK = ROOT / "playbooks" / "asr-mobility.yml"
LAB_SECRETS = ROOT / "inventories" / "lab-secrets"


@dataclass(frozen=True)
class Figures:
    """One timed fleet run, seen from the controller."""

    wall: float
    cpu: float            # this process and its ended children (the engine's workers)
    peak_rss_mb: float    # the larger of this process's and a worker's peak
    base_rss_mb: float    # this process before the run
    totals: str
    exit_code: int
    server_cpu: float = 0.0   # the lab server processes, during the run


def shard_inventories(directory: Path, count: int, servers: int, latency_ms: float
                      ) -> list[Path]:
    """`servers` inventories sharing `count` lab hosts sweep0000.. between them."""
    paths = []
    for shard in range(servers):
        names = [f"sweep{i:04d}" for i in range(shard, count, servers)]
        vars_: dict[str, object] = {
            "transport": "lab", "username": "LAB\\Administrator",
            "password": {"file": str(LAB_SECRETS / "password.txt")},
            "cs_endpoint": "10.0.0.115",
            "asr_passphrase": {"file": str(LAB_SECRETS / "passphrase.txt")},
            "asr_installer_share": "\\\\labshare\\asr",
        }
        if latency_ms:
            vars_["lab"] = {"latency_ms": round(latency_ms)}   # the lab takes whole ms
        path = directory / f"shard{shard}.yml"
        path.write_text(yaml.safe_dump({"all": {"vars": vars_,
                                                "hosts": dict.fromkeys(names)}}),
                        encoding="utf-8")
        paths.append(path)
    return paths


class Servers:
    """The `pushinstall lab serve` processes of one sweep; a context manager."""

    def __init__(self, shards: list[Path], state: Path, transport: str = "psrp") -> None:
        self.shards, self.state, self.transport = shards, state, transport
        self.processes: list[subprocess.Popen[bytes]] = []
        self.written = [shard.with_name(shard.stem + "-served.yml") for shard in shards]

    def __enter__(self) -> Servers:
        env = {**os.environ, "PUSHINSTALL_STATE_DIR": str(self.state)}
        env.pop("PUSHINSTALL_LAB_WIRE", None)
        for shard, written in zip(self.shards, self.written, strict=True):
            written.unlink(missing_ok=True)
            self.processes.append(subprocess.Popen(
                [sys.executable, "-m", "pushinstall", "lab", "serve", "-i", str(shard),
                 "--write-inventory", str(written), "--transport", self.transport],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 600
        while not all(path.exists() for path in self.written):
            if any(p.poll() is not None for p in self.processes) or time.monotonic() > deadline:
                self.__exit__()
                raise SystemExit("a lab server did not start")
            time.sleep(0.2)
        return self

    def cpu_seconds(self) -> float:
        """CPU the server processes have used so far (Linux /proc)."""
        total = 0
        for process in self.processes:
            with open(f"/proc/{process.pid}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])   # utime, stime
        return total / os.sysconf("SC_CLK_TCK")

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)  # serve stops, the hosts are saved
        for process in self.processes:
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                print(f"  lab server {process.pid} did not stop in 120 s: killed, its hosts "
                      "unsaved", flush=True)
                process.kill()
                process.wait()
        self.processes = []


def op_calls(state: Path, names: list[str]) -> int:
    """How many calls the served hosts have answered, from their saved op logs (a host whose
    state was never saved, e.g. a server killed before it could, is counted and told)."""
    from pushinstall.lab.host import state_file

    calls, unsaved = 0, []
    for name in names:
        try:
            calls += len(json.loads(state_file(state, name).read_text(encoding="utf-8"))
                         ["op_log"])
        except FileNotFoundError:
            unsaved.append(name)
    if unsaved:
        print(f"  {len(unsaved)} host(s) left no saved state (first: {unsaved[0]}): "
              "calls per host undercounted", flush=True)
    return calls


def rss_mb() -> float:
    """This process's resident set now (Linux /proc), in MB."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def timed_run(servers: Servers, mode: str, forks: int, workers: int) -> Figures:
    """One fleet run of the shipped playbook on the served hosts, measured."""
    from pushinstall.engine import RunOptions, run_fleet
    from pushinstall.inventory import load_inventory
    from pushinstall.playbook import load_playbook
    from pushinstall.runner import resolve_run_secrets
    from pushinstall.transports.factory import make_transport

    inventory = load_inventory([str(path) for path in servers.written])
    playbook = load_playbook(str(PLAYBOOK))
    hosts = list(inventory.hosts.values())
    resolve_run_secrets(hosts, playbook)
    base = rss_mb()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu0 = time.process_time() + children.ru_utime + children.ru_stime
    server_cpu = servers.cpu_seconds()
    started = time.monotonic()
    summary = run_fleet(hosts, playbook, RunOptions(mode=mode, forks=forks, workers=workers),
                        [], make_transport)
    wall = time.monotonic() - started
    server_cpu = servers.cpu_seconds() - server_cpu
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time() + children.ru_utime + children.ru_stime - cpu0
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               children.ru_maxrss) / 1000  # kB -> MB
    totals = " ".join(f"{count} {status}" for status, count in sorted(summary.totals.items()))
    return Figures(wall, cpu, peak, base, totals, summary.exit_code, server_cpu)


def sweep(count: int, servers: int, forks: int, workers: int, latency_ms: float,
          directory: Path, install: bool = True) -> tuple[Figures | None, float, Figures, float]:
    """Serve `count` fresh hosts, converge them (the install), then the check: the figures of
    both and the calls per host of each. Without `install` the check sees fresh (drifted)
    hosts: the same one gather per host, half the wait."""
    directory.mkdir(parents=True)
    state = directory / "state"
    os.environ["PUSHINSTALL_STATE_DIR"] = str(state)  # the engine's reboot waits, history
    shards = shard_inventories(directory, count, servers, latency_ms)
    names = [f"sweep{i:04d}" for i in range(count)]
    installed, install_calls = None, 0.0
    if install:
        with Servers(shards, state) as served:
            installed = timed_run(served, "run", forks, workers)
        install_calls = op_calls(state, names) / count
    with Servers(shards, state) as served:
        check = timed_run(served, "check", forks, workers)
    check_calls = op_calls(state, names) / count - install_calls
    return installed, install_calls, check, check_calls


def describe(label: str, runs: list[Figures], calls: float, count: int, in_flight: int) -> str:
    """One printed line: the median of `runs`."""
    wall = statistics.median(r.wall for r in runs)
    cpu = statistics.median(r.cpu for r in runs) * 1000 / count
    peak = statistics.median(r.peak_rss_mb for r in runs)
    per_host = statistics.median(max(r.peak_rss_mb - r.base_rss_mb, 0) for r in runs) / in_flight
    walls = " ".join(f"{r.wall:.1f}" for r in runs)
    server = statistics.median(r.server_cpu for r in runs) * 1000 / count
    return (f"  {label:<8} wall {wall:6.1f} s (runs {walls})  {calls:5.1f} calls/host  "
            f"controller CPU {cpu:5.1f} ms/host (lab servers {server:.0f})  "
            f"peak RSS {peak:4.0f} MB, "
            f"{per_host:.2f} MB/host in flight  exit {runs[-1].exit_code} ({runs[-1].totals})")


def main() -> None:
    """Parse the options, sweep each N, print."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--hosts", default="100,300,1000", help="comma-separated N")
    parser.add_argument("--big", action="store_true", help="add N = 3000")
    parser.add_argument("--servers", type=int, default=2, help="lab server processes")
    parser.add_argument("--forks", type=int, default=100)
    parser.add_argument("--workers", default="auto", help="engine processes: auto or a number")
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="every op answers this much later (the lab's latency knob)")
    parser.add_argument("--repeat", type=int, default=1, help="sweeps per N (medians)")
    parser.add_argument("--no-install", action="store_true",
                        help="check fresh hosts, without the install run before")
    args = parser.parse_args()

    from pushinstall.engine.workers import auto_workers

    # SIGTERM (timeout, kill) unwinds like Ctrl-C: the lab servers are stopped, the work
    # directory removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    counts = [int(n) for n in args.hosts.split(",") if n.strip()] + ([3000] if args.big else [])
    work = Path(tempfile.mkdtemp(prefix="pushinstall-bench-sweep-",
                                 dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    try:
        for count in counts:
            workers = (auto_workers(args.forks, count) if args.workers == "auto"
                       else int(args.workers))
            print(f"N={count}: psrp, NTLM + encryption, {args.servers} lab server processes, "
                  f"forks {args.forks}, {workers} engine process(es), latency "
                  f"{args.latency_ms:g} ms, {os.cpu_count()} CPUs (shared machine)", flush=True)
            results = [sweep(count, args.servers, args.forks, workers, args.latency_ms,
                             work / f"n{count}-{index}", not args.no_install)
                       for index in range(max(args.repeat, 1))]
            in_flight = min(args.forks, count)
            installs = [r[0] for r in results if r[0] is not None]
            if installs:
                print(describe("install", installs, results[-1][1], count, in_flight))
            print(describe("check", [r[2] for r in results], results[-1][3], count, in_flight),
                  flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
