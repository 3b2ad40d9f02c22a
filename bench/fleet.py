"""Fleet benchmark: how close does the engine get to the latency floor? Prints, asserts nothing.

    python bench/fleet.py [N] [--forks 100] [--latency-ms 20] [--repeat 3] [--profile FILE]

Runs the shipped playbook (`playbooks/asr-mobility.yml`, loaded and templated for real) on N
fresh lab hosts reached in-process (`transports.lab.LabTransport`: the real op encoding and the
real lab host model; every op call sleeps `latency_ms`, the lab var). For the first run
(install) and a second run (all ok) it prints wall time, hosts per second, calls per host and
the ratio to the floor `calls per host x latency x ceil(N / forks)`. With `--repeat R` each
figure is taken R times on fresh hosts and the median reported. The lab state lives in a
temporary state dir (on /dev/shm when there is one: the simulator's disk writes are not the
engine's cost), removed at the end. It also prints the process CPU per op call: the in-process
lab answers on the controller's CPU under the same GIL, so once CPU per call x forks exceeds the
latency the run is CPU-bound, not latency-bound, and the ratio says by how much.
"""

from __future__ import annotations

import argparse
import math
import os
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


def one_pass(count: int, forks: int, latency_ms: float, profile: str | None,
             ) -> list[tuple[str, float, float, dict[str, int], int, float]]:
    """Install, then an idempotent pass, on fresh hosts:
    (label, wall, calls/host, totals, exit code, process CPU seconds) for each."""
    from pushinstall.engine import RunOptions, run_fleet
    from pushinstall.inventory import load_inventory, select_hosts
    from pushinstall.lab import flush_all, lab_host
    from pushinstall.playbook import load_playbook
    from pushinstall.runner import resolve_run_secrets
    from pushinstall.transports.lab import LabTransport

    out = []
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(prefix="pushinstall-bench-", dir=shm) as temp:
        os.environ["PUSHINSTALL_STATE_DIR"] = str(Path(temp) / "state")
        inventory = load_inventory([str(write_inventory(Path(temp), count, latency_ms))])
        playbook = load_playbook(str(ROOT / "playbooks" / "asr-mobility.yml"))
        fleet = select_hosts(inventory, playbook.hosts)
        resolve_run_secrets(fleet, playbook)
        for label in ("fresh hosts (install)", "second run (all ok)"):
            labs = [lab_host(h.name, h.vars.get("lab")) for h in fleet]
            for lab in labs:
                lab.op_log.clear()
            profiler = None
            if profile and label.startswith("fresh"):
                import cProfile

                profiler = cProfile.Profile()
                profiler.enable()
            started, cpu = time.monotonic(), time.process_time()
            summary = run_fleet(fleet, playbook, RunOptions(forks=forks), [], LabTransport)
            wall, cpu = time.monotonic() - started, time.process_time() - cpu
            if profiler is not None and profile:
                profiler.disable()
                profiler.dump_stats(profile)
            calls = sum(len(lab.op_log) for lab in labs) / max(len(fleet), 1)
            out.append((label, wall, calls, summary.totals, summary.exit_code, cpu))
        flush_all()  # before the state dir goes
    return out


def main() -> None:
    """Parse the options, run, print."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("hosts", type=int, nargs="?", default=1000)
    parser.add_argument("--forks", type=int, default=100)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--profile", help="write a cProfile of the first install run here")
    args = parser.parse_args()

    latency = args.latency_ms / 1000
    runs = [one_pass(args.hosts, args.forks, args.latency_ms, args.profile if i == 0 else None)
            for i in range(max(args.repeat, 1))]
    print(f"{args.hosts} lab hosts, forks {args.forks}, latency {args.latency_ms:g} ms, "
          f"{len(runs)} run(s) each")
    for index, (label, _, calls, totals, code, _) in enumerate(runs[0]):
        walls = [run[index][1] for run in runs]
        wall = statistics.median(walls)
        cpu = statistics.median(run[index][5] for run in runs)
        floor = calls * latency * math.ceil(args.hosts / args.forks)
        print(f"{label}: totals {totals}  exit {code}")
        print(f"  wall {wall:.2f} s (median of {' '.join(f'{w:.2f}' for w in walls)})  "
              f"{args.hosts / wall:.0f} hosts/s  calls/host {calls:.2f}  floor {floor:.2f} s  "
              f"ratio {wall / floor if floor else float('nan'):.2f}")
        print(f"  process CPU {cpu:.1f} s = {cpu * 1000 / max(calls * args.hosts, 1):.2f} ms "
              f"per call; CPU-bound above {args.latency_ms / args.forks:.2f} ms per call")


if __name__ == "__main__":
    main()
