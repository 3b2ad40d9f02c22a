"""Wire benchmark: what a compliance check and a file push cost on each transport. Prints,
asserts nothing.

    python bench/wire.py [--hosts 5] [--push-mb 50] [--transports psrp,winrm,ssh]

For each transport, N fresh lab hosts are served on loopback by `pushinstall.lab.serve`
(real pypsrp, pywinrm and asyncssh clients against the lab's WS-Man and SSH endpoints), the
shipped ASR playbook converges them through the engine, then the engine's `check` runs and
the endpoints' counters give, per host, the connections, requests and bytes in and out that
the check took, with its wall time. Then one host receives a `--push-mb` file through the
transport's `put_file` (file_begin / file_chunk / file_end), timed for MB/s.
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


def fleet_inventory(directory: Path, count: int) -> Path:
    """An inventory of `count` plain lab hosts with the shipped lab inventory's vars."""
    document = {"all": {
        "vars": {
            "transport": "lab", "username": "LAB\\Administrator",
            "password": {"file": str(LAB_SECRETS / "password.txt")},
            "cs_endpoint": "10.0.0.115",
            "asr_passphrase": {"file": str(LAB_SECRETS / "passphrase.txt")},
            "asr_installer_share": "\\\\labshare\\asr",
        },
        "hosts": {f"bench{i:03d}": None for i in range(1, count + 1)},
    }}
    path = directory / "bench.yml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def snapshot(server: LabServer) -> dict[str, dict[str, int]]:
    """Every served host's counters now."""
    return {s.name: server.counters(s.name) for s in server.served}


def measure_check(server: LabServer, hosts: list[Host], playbook: Playbook) -> None:
    """Converge, then time the engine's check and print what each host's check cost (and,
    as the mean per host, what the converge cost: many calls over one connection)."""
    initial = snapshot(server)
    converge = run_fleet(hosts, playbook, RunOptions(mode="run", hooks=PROCESS_HOOKS), [],
                         make_transport)
    before = snapshot(server)
    started = time.monotonic()
    summary = run_fleet(hosts, playbook, RunOptions(mode="check", hooks=PROCESS_HOOKS), [],
                        make_transport)
    wall = time.monotonic() - started
    after = snapshot(server)
    print(f"  converge exit {converge.exit_code}, check exit {summary.exit_code} "
          f"{summary.totals}, fleet wall {wall:.2f} s")
    spent = {k: statistics.mean(before[h.name][k] - initial[h.name][k] for h in hosts)
             for k in COUNTERS}
    print(f"  converge per host: {spent['connections']:.1f} conns, {spent['requests']:.1f} reqs, "
          f"{spent['bytes_in']:,.0f} bytes in, {spent['bytes_out']:,.0f} bytes out")
    print(f"  {'host':<10} {'conns':>5} {'reqs':>5} {'bytes in':>10} {'bytes out':>10} "
          f"{'wall s':>7}")
    rows = []
    for host in hosts:
        delta = {k: after[host.name][k] - before[host.name][k] for k in COUNTERS}
        seconds = summary.hosts[host.name].duration
        rows.append((delta, seconds))
        print(f"  {host.name:<10} {delta['connections']:>5} {delta['requests']:>5} "
              f"{delta['bytes_in']:>10,} {delta['bytes_out']:>10,} {seconds:>7.3f}")
    mean = {k: statistics.mean(r[0][k] for r in rows) for k in COUNTERS}
    print(f"  {'mean':<10} {mean['connections']:>5.1f} {mean['requests']:>5.1f} "
          f"{mean['bytes_in']:>10,.0f} {mean['bytes_out']:>10,.0f} "
          f"{statistics.mean(r[1] for r in rows):>7.3f}")


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
    print(f"  push {size_mb:.0f} MB to {host.name}: {seconds:.2f} s, {size_mb / seconds:.1f} MB/s, "
          f"{after['requests'] - before['requests']} requests, {sent / 1e6:.1f} MB on the wire "
          f"(x{sent / local.stat().st_size:.2f}), changed={result.get('changed')}")


def bench_transport(transport: str, count: int, push: Path | None, work: Path) -> None:
    """Serve `count` fresh hosts written as `transport`, then measure the check and the push."""
    directory = work / transport
    directory.mkdir()
    state = directory / "state"
    os.environ["PUSHINSTALL_STATE_DIR"] = str(state)  # the engine's reboot waits, history...
    inventory = load_inventory([str(fleet_inventory(directory, count))])
    written = directory / "served.yml"
    with LabServer(lab_hosts(inventory), directory / "served.d", state_dir=state,
                   transport=transport) as server:
        server.write_inventory(written, inventory)
        hosts = list(load_inventory([str(written)]).hosts.values())
        print(f"{transport}: {count} hosts")
        measure_check(server, hosts, load_playbook(str(PLAYBOOK)))
        if push is not None:
            measure_push(server, hosts[0], push, state)


def main() -> None:
    """Parse arguments and run the benchmark for each transport."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--hosts", type=int, default=5, help="lab hosts per transport")
    parser.add_argument("--push-mb", type=int, default=50, help="size of the pushed file, "
                        "0 to skip")
    parser.add_argument("--transports", default="psrp,winrm,ssh")
    args = parser.parse_args()
    os.environ.pop("PUSHINSTALL_LAB_WIRE", None)
    work = Path(tempfile.mkdtemp(prefix="pushinstall-bench-wire-"))
    try:
        push = None
        if args.push_mb > 0:
            push = work / "push.bin"
            push.write_bytes(os.urandom(args.push_mb * 1_000_000))
        for transport in args.transports.split(","):
            bench_transport(transport.strip(), args.hosts, push, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
