"""A pytest plugin that records where the suite's CPU goes, per test and per worker.

    PUSHINSTALL_CPU_LOG=/tmp/cpu PYTHONPATH=bench python -m pytest -q -p pytest_cpu
    python bench/pytest_cpu.py /tmp/cpu          # the summary

Each test process (xdist worker) writes `<dir>/<worker>.jsonl`: one line per test with the CPU
seconds of the test process itself (RUSAGE_SELF), of its children reaped during the test
(RUSAGE_CHILDREN: cold interpreters, mcs, short-lived helpers) and of its long-lived children
while the test ran (the warm fork server with the forks it reaped, the shared mono host: read
from /proc, since they are reaped only at the end), and one line for start-up and collection.
It asserts nothing and changes no test.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import pytest

_TICK = os.sysconf("SC_CLK_TCK")


def _own() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, reaped.ru_utime + reaped.ru_stime


def _live_children() -> dict[int, float]:
    """CPU so far (own + reaped children) of each live child of this process, by pid."""
    found: dict[int, float] = {}
    me = os.getpid()
    try:
        tasks = os.listdir(f"/proc/{me}/task")
    except OSError:
        return found
    pids: set[int] = set()
    for task in tasks:
        try:
            text = Path(f"/proc/{me}/task/{task}/children").read_text()
        except OSError:
            continue
        pids.update(int(p) for p in text.split())
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        found[pid] = sum(int(v) for v in fields[11:15]) / _TICK   # utime stime cutime cstime
    return found


class _Recorder:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.seen: dict[int, float] = {}
        self.mark = (0.0, 0.0, 0.0)
        self.wall = 0.0

    def _live_delta(self) -> float:
        now = _live_children()
        # A child that ended has moved to RUSAGE_CHILDREN: drop what was counted of it already.
        delta = sum(cpu - self.seen.get(pid, 0.0) for pid, cpu in now.items())
        delta -= sum(cpu for pid, cpu in self.seen.items() if pid not in now)
        self.seen = now
        return delta

    def start(self) -> None:
        self._live_delta()
        own, reaped = _own()
        self.mark = (own, reaped, 0.0)
        self.wall = time.monotonic()

    def stop(self, name: str, **extra: Any) -> None:
        own, reaped = _own()
        live = self._live_delta()
        row = {"test": name, "self": round(own - self.mark[0], 4),
               "reaped": round(reaped - self.mark[1], 4), "live": round(live, 4),
               "wall": round(time.monotonic() - self.wall, 4), **extra}
        with self.out.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")


_recorder: _Recorder | None = None


def pytest_configure(config: Any) -> None:
    global _recorder
    where = os.environ.get("PUSHINSTALL_CPU_LOG")
    if not where:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    if worker == "main" and config.getoption("numprocesses", None):
        return                      # the xdist controller: it only relays the workers' reports
    Path(where).mkdir(parents=True, exist_ok=True)
    _recorder = _Recorder(Path(where) / f"{worker}.jsonl")


def pytest_collection_finish(session: Any) -> None:
    if _recorder is None:
        return
    own, reaped = _own()
    row = {"test": "<start-up and collection>", "self": round(own, 4), "reaped": round(reaped, 4),
           "live": 0.0, "wall": 0.0}
    with _recorder.out.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: Any) -> None:
    if _recorder is not None:
        _recorder.start()


def pytest_runtest_logfinish(nodeid: str, location: Any) -> None:
    if _recorder is not None:
        _recorder.stop(nodeid)


def _summary(where: Path, top: int = 40) -> None:
    rows = [json.loads(line) for f in sorted(where.glob("*.jsonl")) for line in f.open()]
    total = lambda r: r["self"] + r["reaped"] + r["live"]  # noqa: E731
    startup = [r for r in rows if r["test"].startswith("<")]
    tests = [r for r in rows if not r["test"].startswith("<")]
    print(f"workers {len(startup)}: start-up+collection {sum(map(total, startup)):.1f} s CPU")
    parts = {key: sum(r[key] for r in tests) for key in ("self", "reaped", "live")}
    print(f"tests {len(tests)}: {sum(map(total, tests)):.1f} s CPU (self {parts['self']:.1f}, "
          f"reaped {parts['reaped']:.1f}, live children {parts['live']:.1f})")
    by_module: dict[str, float] = {}
    for r in tests:
        module = r["test"].split("::")[0]
        by_module[module] = by_module.get(module, 0.0) + total(r)
    print("\nby module:")
    for module, cpu in sorted(by_module.items(), key=lambda kv: -kv[1])[:25]:
        print(f"  {cpu:7.2f}  {module}")
    print("\nby test:")
    for r in sorted(tests, key=lambda r: -total(r))[:top]:
        print(f"  {total(r):6.2f} (self {r['self']:.2f} reaped {r['reaped']:.2f} "
              f"live {r['live']:.2f} wall {r['wall']:.2f})  {r['test']}")


if __name__ == "__main__":
    _summary(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 40)
