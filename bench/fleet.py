"""Fleet benchmark: how close does the engine get to the latency floor? Prints, asserts nothing.

    python bench/fleet.py [N] [--forks 100] [--latency-ms 20]

Runs N simulated hosts (every op call sleeps `latency`) through the engine and prints wall
time, hosts per second, calls per host, and the ratio to the floor
`calls per host x latency x ceil(N / forks)`.

The hosts are the engine tests' stand-in (tests/test_engine_kit.py): the in-process lab
transport (`transports/lab.py`) and the resource runtime had not landed when this was written.
Every request still goes through the real op encoding and decoding.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_engine_kit import (
    STUB_TYPES,
    StubLab,
    _host_variables,
    _render_step,
    asr_playbook,
    hosts,
)

import pushinstall.playbook
import pushinstall.resources
from pushinstall.engine import RunOptions, run_fleet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("hosts", type=int, nargs="?", default=1000)
    parser.add_argument("--forks", type=int, default=100)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    args = parser.parse_args()

    pushinstall.resources.RESOURCE_TYPES = STUB_TYPES  # type: ignore[attr-defined]
    pushinstall.playbook.render_step = _render_step  # type: ignore[attr-defined]
    pushinstall.playbook.host_variables = _host_variables  # type: ignore[attr-defined]

    latency = args.latency_ms / 1000
    lab = StubLab(latency=latency)
    fleet = hosts(args.hosts)
    for label in ("fresh hosts (install)", "second run (all ok)"):
        for host in lab.hosts.values():
            host.op_log.clear()
        started = time.monotonic()
        summary = run_fleet(fleet, asr_playbook(), RunOptions(forks=args.forks), [], lab.factory)
        wall = time.monotonic() - started
        calls = sum(len(h.op_log) for h in lab.hosts.values()) / max(len(fleet), 1)
        floor = calls * latency * math.ceil(len(fleet) / args.forks)
        print(f"{label}: {len(fleet)} hosts, forks {args.forks}, latency {args.latency_ms:g} ms")
        print(f"  totals {summary.totals}  exit {summary.exit_code}")
        print(f"  wall {wall:.2f} s  {len(fleet) / wall:.0f} hosts/s  calls/host {calls:.2f}  "
              f"floor {floor:.2f} s  ratio {wall / floor if floor else float('nan'):.2f}")


if __name__ == "__main__":
    main()
