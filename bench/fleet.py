"""Fleet benchmark: how close does the engine get to the latency floor? Prints, asserts nothing.

    python bench/fleet.py [N] [--forks 100] [--latency-ms 20] [--workers auto|W]
                          [--repeat 3] [--profile FILE]

Runs the shipped playbook (`playbooks/asr-mobility.yml`, loaded and templated for real) on N
fresh lab hosts reached in-process (`lab.transport.LabTransport`: the real op encoding and the
real lab host model; every op call sleeps `latency_ms`, the lab var). For the first run
(install) and a second run (all ok) it prints wall time, hosts per second, calls per host (from
the lab hosts' own op logs) and the ratio to the floor `calls per host x latency x
ceil(N / forks)`. With `--repeat R` each figure is taken R times on fresh hosts and the median
reported. The lab state lives in a temporary state dir (on /dev/shm when there is one: the
simulator's disk writes are not the engine's cost), removed at the end. The simulated machines
are made (or read again) before the clock starts, as real ones exist before a run; saving what
the run did to them is inside the timed run (the workers save their hosts before they end).

It also prints the CPU per op call (this process and its engine workers): the in-process lab
answers on the controller's CPU, so once CPU per call x forks / cores exceeds the latency the
run is CPU-bound, not latency-bound, and the ratio says by how much. `--workers` is the engine's
(default auto: one process per 50 forks, one per CPU); `--workers 1` keeps everything in one
process. `--profile` (one process only) writes a cProfile of the main thread.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_inventory(directory: Path, count: int, latency_ms: float) -> Path:
    """An inventory of `count` lab hosts `bench0000..`, like inventories/lab.yml."""
    (directory / "passphrase.txt").write_text("lab-passphrase\n", encoding="utf-8")
    (directory / "password.txt").write_text("lab-password\n", encoding="utf-8")
    last = max(count - 1, 0)
    path = directory / "bench.yml"
    path.write_text(f"""\
all:
  vars:
    transport: lab
    lab_wire: false
    username: LAB\\Administrator
    password: {{file: password.txt}}
    cs_endpoint: 10.0.0.115
    asr_passphrase: {{file: passphrase.txt}}
    asr_installer_share: \\\\labshare\\asr
    lab: {{latency_ms: {latency_ms:g}}}
  hosts:
    bench[0000:{last:04d}]:
""", encoding="utf-8")
    return path


def ops_logged(state: Path, names: list[str]) -> int:
    """How many calls the lab hosts have answered, from their op logs (saved first)."""
    from pushinstall.lab import flush_all
    from pushinstall.lab.host import state_file

    flush_all()
    return sum(len(json.loads(state_file(state, name).read_text(encoding="utf-8"))["op_log"])
               for name in names)


def cpu_seconds() -> float:
    """CPU of this process and of its ended children (the engine's workers)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def one_pass(count: int, forks: int, latency_ms: float, workers: int | None,
             profile: str | None) -> list[tuple[str, float, float, dict[str, int], int, float]]:
    """Install, then an idempotent pass, on fresh hosts:
    (label, wall, calls/host, totals, exit code, CPU seconds) for each."""
    from pushinstall.engine import RunOptions, run_fleet
    from pushinstall.inventory import load_inventory, select_hosts
    from pushinstall.lab import lab_host
    from pushinstall.lab.connect import PROCESS_HOOKS
    from pushinstall.lab.transport import LabTransport
    from pushinstall.playbook import load_playbook
    from pushinstall.runner import resolve_run_secrets

    out = []
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(prefix="pushinstall-bench-", dir=shm) as temp:
        state = Path(temp) / "state"
        os.environ["PUSHINSTALL_STATE_DIR"] = str(state)
        inventory = load_inventory([str(write_inventory(Path(temp), count, latency_ms))])
        playbook = load_playbook(str(ROOT / "playbooks" / "asr-mobility.yml"))
        fleet = select_hosts(inventory, playbook.hosts)
        resolve_run_secrets(fleet, playbook)
        names = [h.name for h in fleet]
        answered = 0
        for label in ("fresh hosts (install)", "second run (all ok)"):
            # the machines exist before the run: made (or read again after the last run's
            # workers saved them) here, untimed; forked workers inherit them
            for host in fleet:
                lab_host(host.name, host.vars.get("lab")).flush()
            profiler = None
            if profile and label.startswith("fresh"):
                import cProfile

                profiler = cProfile.Profile()
                profiler.enable()
            started, cpu = time.monotonic(), cpu_seconds()
            options = RunOptions(forks=forks, workers=workers, hooks=PROCESS_HOOKS)
            summary = run_fleet(fleet, playbook, options, [], LabTransport)
            wall, cpu = time.monotonic() - started, cpu_seconds() - cpu
            if profiler is not None and profile:
                profiler.disable()
                profiler.dump_stats(profile)
            before, answered = answered, ops_logged(state, names)
            calls = (answered - before) / max(len(fleet), 1)
            out.append((label, wall, calls, summary.totals, summary.exit_code, cpu))
    return out


def main() -> None:
    """Parse the options, run, print."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("hosts", type=int, nargs="?", default=1000)
    parser.add_argument("--forks", type=int, default=100)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--workers", default="auto", help="engine processes: auto or a number")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--profile", help="write a cProfile of the first install run here")
    args = parser.parse_args()

    from pushinstall.engine.workers import auto_workers

    latency = args.latency_ms / 1000
    workers = (auto_workers(args.forks, args.hosts) if args.workers == "auto"
               else int(args.workers))
    runs = [one_pass(args.hosts, args.forks, args.latency_ms, workers,
                     args.profile if i == 0 else None)
            for i in range(max(args.repeat, 1))]
    print(f"{args.hosts} lab hosts, forks {args.forks}, latency {args.latency_ms:g} ms, "
          f"{workers} engine process(es) on {os.cpu_count()} CPU(s), {len(runs)} run(s) each")
    for index, (label, _, calls, totals, code, _) in enumerate(runs[0]):
        walls = [run[index][1] for run in runs]
        wall = statistics.median(walls)
        cpu = statistics.median(run[index][5] for run in runs)
        floor = calls * latency * math.ceil(args.hosts / args.forks)
        print(f"{label}: totals {totals}  exit {code}")
        print(f"  wall {wall:.2f} s (median of {' '.join(f'{w:.2f}' for w in walls)})  "
              f"{args.hosts / wall:.0f} hosts/s  calls/host {calls:.2f}  floor {floor:.2f} s  "
              f"ratio {wall / floor if floor else float('nan'):.2f}")
        bound = args.latency_ms * min(workers, os.cpu_count() or 1) / args.forks
        print(f"  CPU {cpu:.1f} s = {cpu * 1000 / max(calls * args.hosts, 1):.2f} ms per call; "
              f"CPU-bound above {bound:.2f} ms per call")


if __name__ == "__main__":
    main()
