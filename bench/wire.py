"""Wire benchmark: what a compliance check and a file push cost on each transport. Prints,
asserts nothing.

    python bench/wire.py [--hosts 5] [--repeat 3] [--push-mb 50] [--transports psrp,winrm,ssh]
                         [--winrs-refused true|receiver]

For each transport and each of `--repeat` rounds, N fresh lab hosts are served on loopback by
`pushinstall.lab.serve` (real pypsrp, pywinrm and asyncssh clients against the lab's WS-Man and
SSH endpoints, NTLM with message encryption) and the engine's `check` of the shipped ASR
playbook runs twice: first contact (nothing cached on the host, nothing remembered by the
controller) and a later run. The endpoints' counters give, per host, the requests and bytes
sent to the host and back; the table shows the median over the rounds of each round's mean.
Then one host receives a `--push-mb` file through the transport's `put_file` (file_begin /
file_chunk / file_end), timed for MB/s; with `--winrs-refused` the hosts refuse the WinRS
receiver and the push takes its fallback, `file_chunk` calls over the agent session.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from pushinstall.engine import RunOptions, run_fleet
from pushinstall.inventory import load_inventory
from pushinstall.lab.connect import PROCESS_HOOKS, make_transport, open_transport
from pushinstall.lab.serve import LabServer, lab_hosts
from pushinstall.model import Host, Playbook
from pushinstall.playbook import load_playbook

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


def measure_push(server: LabServer, host: Host, local: Path, state: Path) -> None:
    """Time one `put_file` of `local` to `host`."""
    sha256 = hashlib.sha256(local.read_bytes()).hexdigest()
    size_mb = local.stat().st_size / 1e6
    before = server.counters(host.name)
    transport = open_transport(host, state)
    try:
        started = time.monotonic()
        result = transport.put_file(local, "C:\\Temp\\bench\\push.bin", sha256)
        seconds = time.monotonic() - started
    finally:
        transport.close()
    after = server.counters(host.name)
    sent = after["bytes_in"] - before["bytes_in"]
    stats = getattr(transport, "last_push", None)
    way = f", {stats.way}" if getattr(stats, "way", None) else ""
    print(f"  push {size_mb:.0f} MB to {host.name}: {seconds:.2f} s, {size_mb / seconds:.1f} MB/s, "
          f"{after['requests'] - before['requests']} requests, {sent / 1e6:.1f} MB on the wire "
          f"(x{sent / local.stat().st_size:.2f}), changed={result.get('changed')}{way}")


def bench_transport(transport: str, count: int, repeat: int, push: Path | None,
                    work: Path, refused: bool | str = False) -> dict[str, dict[str, float]]:
    """`repeat` rounds of fresh hosts written as `transport`: the check on first contact and
    on a later run; then the push. Returns the medians by run."""
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
            if push is not None and round_ == repeat - 1:
                measure_push(server, hosts[0], push, state)
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
        print(f"compliance check, per host: mean of {args.hosts} hosts, median of "
              f"{args.repeat} rounds (exit 2: the fresh hosts drifted)")
        print(f"  {'':<6} {'run':<14} {'reqs':>5} {'bytes in':>10} {'bytes out':>10} "
              f"{'conns':>5} {'wall s':>7} {'exit':>4}")
        for transport in args.transports.split(","):
            bench_transport(transport.strip(), args.hosts, args.repeat, push, work, refused)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
