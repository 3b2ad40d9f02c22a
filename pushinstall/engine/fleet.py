"""The fleet executor: hosts fanned out with asyncio over a thread pool, in `serial` batches.

- At most `forks` hosts in flight (options beat the playbook's `settings.forks`); each host's
  pipeline (engine/host.py) runs in a worker thread, since transports are synchronous. With
  `workers` > 1 those threads live in that many forked processes (workers.py), so the
  controller's CPU work per call is not bound to one core; `auto` picks one per 50 forks.
- `serial` (a number, a percentage, or a list like `[1, 10, "25%"]`, the last size repeating)
  splits the hosts into batches run one after the other. After each batch, like Ansible: more
  than `max_fail_percentage` of the batch failed or unreachable, or any at all with
  `any_errors_fatal`, and no later batch starts; within a batch, no further host of it is
  launched once that is so (without `serial` the fleet is one batch). Hosts that never
  started end `skipped`.
- Ctrl-C (SIGINT, in the main thread) stops launching hosts; hosts in flight finish their
  current step and stop (`interrupted`); the summary still comes out, exit code 130. A second
  Ctrl-C aborts. SIGTERM is handled the same way, exit code 143.
- A host past `settings.host_timeout` (+ a grace) is given up on as `failed`; whatever its
  pipeline says later is dropped, so a host has one `host_finished`.
- A host whose pipeline breaks in an unexpected way fails alone, with a please-report hint.
- Sinks that say `appends_from_workers` (the JSONL logs) are written by each worker process
  itself for its hosts, so events already done are on disk even if the parent is killed.

Exit codes: 130 interrupted (143 by SIGTERM); 2 a host failed (or drifted, in check); 4 a host
unreachable and none failed; 0 otherwise (`reboot_pending` is a warning shown in the recap, not
a failure).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pushinstall import events
from pushinstall.display import clean_event
from pushinstall.engine.host import HostOutcome, HostPipeline, TransportFactory
from pushinstall.engine.support import Backoff, collect_secrets
from pushinstall.engine.workers import ProcessHooks, WorkerPool, auto_workers, available
from pushinstall.errors import (
    BUG_HINT,
    EXIT_HOST_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_UNREACHABLE,
    internal_error,
)
from pushinstall.model import FAILED_STATUSES, Host, Playbook, Status
from pushinstall.secret import Redactor
from pushinstall.transports.factory import prepare as prepare_transports

WORKER_QUEUE = 8
HOST_TIMEOUT_GRACE = 30.0


@dataclass
class RunOptions:
    """How to run: `mode` run|check; `check_mode` (run --check) and check both change nothing
    unless `remediate`; `forks` None means the playbook's; `workers` None means auto; `diff`
    asks the console to show each change's diff (events always carry it)."""

    mode: str = "run"
    check_mode: bool = False
    remediate: bool = False
    forks: int | None = None
    workers: int | None = None        # processes; None = auto (workers.auto_workers)
    diff: bool = False
    verbose: int = 0
    extra_vars: dict[str, Any] = field(default_factory=dict)
    limit: str | None = None
    run_id: str = ""
    backoff: Backoff = field(default_factory=Backoff)
    hooks: ProcessHooks = field(default_factory=ProcessHooks)   # set by the runner (the lab)

    @property
    def changes_nothing(self) -> bool:
        """True when hosts are only gathered and planned."""
        return (self.mode == "check" or self.check_mode) and not self.remediate

    def described(self) -> dict[str, Any]:
        """The options a report shows; extra vars by name only (a value may be a secret)."""
        return {"mode": self.mode, "check_mode": self.check_mode, "remediate": self.remediate,
                "forks": self.forks, "workers": self.workers, "limit": self.limit,
                "extra_vars": sorted(self.extra_vars)}


@dataclass
class RunSummary:
    """A finished run: each host's outcome (inventory order), totals per status, exit code."""

    run_id: str
    hosts: dict[str, HostOutcome]
    totals: dict[str, int]
    exit_code: int
    interrupted: bool = False
    duration: float = 0.0


def new_run_id() -> str:
    """A sortable, unique run id: `20261126T181021.042-1a2b3c` (UTC, to the millisecond: two
    runs in one second still sort in the order they began)."""
    now = time.time()
    return (time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}-"
            + uuid.uuid4().hex[:6])


def batch_sizes(serial: list[int | str], total: int) -> list[int]:
    """Ansible's `serial`: sizes as given, percentages of `total` (at least 1), the last size
    repeating until every host is placed."""
    if not serial:
        return [total] if total else []
    sizes: list[int] = []
    for item in serial:
        if isinstance(item, str) and item.strip().endswith("%"):
            size = math.floor(total * float(item.strip()[:-1]) / 100)
        else:
            size = int(item)
        sizes.append(max(size, 1))
    out: list[int] = []
    placed = 0
    index = 0
    while placed < total:
        size = min(sizes[min(index, len(sizes) - 1)], total - placed)
        out.append(size)
        placed += size
        index += 1
    return out


def exit_code_for(statuses: list[str], interrupted: bool = False,
                  drift_fails: bool = True) -> int:
    """The run's exit code from the hosts' final statuses. `drift_fails` False is `run
    --check`: pending changes are no failure there (as in Ansible); `check` keeps exit 2."""
    if interrupted:
        return EXIT_INTERRUPTED
    failing = (Status.FAILED, Status.DRIFTED) if drift_fails else (Status.FAILED,)
    if any(s in failing for s in statuses):
        return EXIT_HOST_FAILED
    if Status.UNREACHABLE in statuses:
        return EXIT_UNREACHABLE
    return EXIT_OK


class _Bus:
    """Hands events to every sink, one at a time (events come from many threads)."""

    def __init__(self, sinks: list[events.Sink]) -> None:
        self.sinks = sinks
        self.shared = [s for s in sinks if getattr(s, "appends_from_workers", False)]
        self.others = [s for s in sinks if s not in self.shared]
        self.lock = threading.Lock()
        self.dropped: set[str] = set()     # hosts given up on: later events are not theirs

    def _to(self, sinks: list[events.Sink], event: events.Event) -> None:
        if getattr(event, "host", None) in self.dropped:
            return
        clean_event(event)   # a target's text never reaches a terminal or report raw
        with self.lock:
            for sink in sinks:
                with contextlib.suppress(Exception):  # a broken sink must not stop the run
                    sink.emit(event)

    def emit(self, event: events.Event) -> None:
        """To every sink: an event of this process."""
        self._to(self.sinks, event)

    def relay(self, event: events.Event) -> None:
        """An event a worker sent, which it already gave the shared sinks itself."""
        self._to(self.others, event)

    def for_worker(self) -> _Bus:
        """In a forked worker: a bus of the shared sinks only, with a lock of its own."""
        return _Bus(self.shared)

    def close(self) -> None:
        """Nothing: the sinks are the run's to close, once, in the parent."""


class _Interrupt:
    """The first SIGINT or SIGTERM sets the flag (and says which came); the previous handler
    comes back for a second one."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.flag = threading.Event()
        self.signum: int | None = None
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _Interrupt:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = self.signum or signum
        self.flag.set()
        fallback = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
        signal.signal(signum, self.previous.get(signum) or fallback)

    @property
    def exit_code(self) -> int:
        """130 for Ctrl-C, 143 for SIGTERM."""
        return EXIT_TERMINATED if self.signum == signal.SIGTERM else EXIT_INTERRUPTED

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self.previous.items():
            if previous is not None:
                signal.signal(signum, previous)


def _default_factory() -> TransportFactory:
    from pushinstall.transports.factory import make_transport

    return make_transport


class _Fleet:
    def __init__(self, hosts: list[Host], playbook: Playbook, options: RunOptions,
                 bus: _Bus, factory: TransportFactory, interrupt: _Interrupt) -> None:
        self.hosts = hosts
        self.playbook = playbook
        self.options = options
        self.bus = bus
        self.factory = factory
        self.interrupt = interrupt
        self.forks = max(1, options.forks or playbook.settings.forks)
        wanted = options.workers if options.workers is not None else auto_workers(
            self.forks, len(hosts))
        # never more workers than hosts in flight or hosts; one process where fork is missing
        self.workers = max(1, min(wanted, self.forks, len(hosts))) if available() else 1
        self.outcomes: dict[str, HostOutcome] = {}
        # hosts of the batch in flight that failed: batches run one after the other, so a
        # count reset at each batch's start, not a walk over the batch before every launch
        # (the ASR playbook sets max_fail_percentage: a walk made a run quadratic in hosts)
        self.batch_failures = 0
        self.done = threading.Event()

    def _pipeline(self, host: Host, emit: Callable[[events.Event], None],
                  stop_requested: Callable[[], bool]) -> Callable[[], HostOutcome]:
        def run() -> HostOutcome:
            try:
                return HostPipeline(
                    host, self.playbook, check=self.options.changes_nothing,
                    extra_vars=self.options.extra_vars, emit=emit,
                    transport_factory=self.factory, backoff=self.options.backoff,
                    stop_requested=stop_requested,
                ).run()
            except Exception as error:   # a bug fails this host, never the run
                outcome = HostOutcome(host.name, Status.FAILED, self._bug(host, error))
                emit(events.HostFinished(host=host.name, status=outcome.status,
                                         message=outcome.message))
                return outcome
        return run

    def _bug(self, host: Host, error: Exception) -> str:
        """The failed host's message for a bug, its secrets masked (or, when the secrets
        cannot be read, only the exception's type)."""
        try:
            redactor = Redactor()
            collect_secrets(redactor, host.connection.password, host.vars,
                            self.options.extra_vars)
            return redactor.redact(internal_error(error))
        except Exception:
            return f"internal error: {type(error).__name__} (hint: {BUG_HINT})"

    async def _one(self, host: Host, runner: ThreadPoolExecutor | WorkerPool,
                   gate: asyncio.Semaphore, batch: list[Host]) -> None:
        async with gate:
            # a batch past its failure limit launches no more hosts (without `serial` the
            # whole fleet is one batch, and the limit would otherwise only act at its end)
            if self.interrupt.flag.is_set() or self._batch_failed(batch):
                return
            if isinstance(runner, WorkerPool):
                started, done = runner.submit(host)
                await asyncio.wrap_future(started)   # the deadline counts from here
                running = asyncio.wrap_future(done)
            else:
                running = asyncio.get_running_loop().run_in_executor(
                    runner, self._pipeline(host, self.bus.emit, self.interrupt.flag.is_set))
            limit = self.playbook.settings.host_timeout
            try:
                outcome = await asyncio.wait_for(
                    running, timeout=limit + HOST_TIMEOUT_GRACE if limit and limit > 0 else None,
                )
            except asyncio.TimeoutError:
                outcome = HostOutcome(host.name, Status.FAILED,
                                      f"gave up after the host deadline ({limit:g}s)")
                self.bus.emit(events.HostFinished(host=host.name, status=outcome.status,
                                                  message=outcome.message))
                self.bus.dropped.add(host.name)
                if isinstance(runner, WorkerPool):
                    runner.give_up(host)
            if outcome is not None:    # None: a worker had it queued when Ctrl-C came
                self.outcomes[host.name] = outcome
                if outcome.status in FAILED_STATUSES:
                    self.batch_failures += 1

    def _batch_failed(self, batch: list[Host]) -> str:
        settings = self.playbook.settings
        failed = self.batch_failures   # asked before every launch: a count, not a walk
        if failed and settings.any_errors_fatal:
            return f"any_errors_fatal: {failed} host(s) failed"
        limit = settings.max_fail_percentage
        if limit is not None and batch and failed * 100 / len(batch) > limit:
            return (f"max_fail_percentage {limit:g}% exceeded: {failed} of {len(batch)} "
                    f"host(s) in the batch failed")
        return ""

    async def run(self) -> str:
        """Run every batch; return why the run stopped early ("" when it did not)."""
        runner: ThreadPoolExecutor | WorkerPool
        if self.workers > 1:
            prepare_transports(self.hosts)   # once here, not once per worker
            runner = WorkerPool(self.workers, self.hosts, self._pipeline, self.forks,
                                self.bus.emit, self.bus.relay, self.bus.for_worker,
                                self.options.hooks)
            relay = threading.Thread(target=self._relay_stop, args=(runner,), daemon=True)
            relay.start()
        else:
            runner = ThreadPoolExecutor(max_workers=self.forks,
                                        thread_name_prefix="pushinstall-host")
        with runner:
            try:
                return await self._batches(runner)
            finally:
                self.done.set()

    def _relay_stop(self, pool: WorkerPool) -> None:
        """Ctrl-C reaches the parent only (workers ignore SIGINT): pass it on."""
        while not self.done.is_set():
            if self.interrupt.flag.wait(0.2):
                pool.stop()
                return

    async def _batches(self, runner: ThreadPoolExecutor | WorkerPool) -> str:
        # a worker runs `forks / workers` hosts at once and keeps a few more queued, so a
        # thread that finishes a host starts the next without a round trip to this process
        queued = WORKER_QUEUE * self.workers if isinstance(runner, WorkerPool) else 0
        gate = asyncio.Semaphore(self.forks + queued)
        start = 0
        for size in batch_sizes(self.playbook.settings.serial, len(self.hosts)):
            batch = self.hosts[start:start + size]
            start += size
            self.batch_failures = 0
            await asyncio.gather(*(self._one(h, runner, gate, batch) for h in batch))
            if self.interrupt.flag.is_set():
                return "interrupted"
            reason = self._batch_failed(batch)
            if reason:
                return reason
        return ""


def run_fleet(
    hosts: list[Host],
    playbook: Playbook,
    options: RunOptions,
    sinks: list[events.Sink],
    transport_factory: TransportFactory | None = None,
) -> RunSummary:
    """Run `playbook` on `hosts`; every event goes to `sinks`, which are closed at the end."""
    started = time.monotonic()
    run_id = options.run_id or new_run_id()
    bus = _Bus(sinks)
    mode = "check" if options.mode == "check" or options.check_mode else "run"
    bus.emit(events.RunStarted(run_id=run_id, mode=mode, playbook=playbook.path or playbook.name,
                               hosts=[h.name for h in hosts],
                               groups={h.name: list(h.groups) for h in hosts},
                               options=options.described()))
    try:
        with _Interrupt() as interrupt:
            fleet = _Fleet(hosts, playbook, options, bus,
                           transport_factory or _default_factory(), interrupt)
            stopped = asyncio.run(fleet.run())
        interrupted = interrupt.flag.is_set()
        outcomes: dict[str, HostOutcome] = {}
        for host in hosts:
            outcome = fleet.outcomes.get(host.name)
            if outcome is None:
                outcome = HostOutcome(host.name, Status.SKIPPED, f"not started: {stopped}")
                bus.emit(events.HostFinished(host=host.name, status=outcome.status,
                                             message=outcome.message))
            outcomes[host.name] = outcome
        totals: dict[str, int] = {}
        for outcome in outcomes.values():
            totals[outcome.status] = totals.get(outcome.status, 0) + 1
        summary = RunSummary(
            run_id=run_id, hosts=outcomes, totals=totals,
            exit_code=(interrupt.exit_code if interrupted
                       else exit_code_for([o.status for o in outcomes.values()],
                                          drift_fails=options.mode == "check")),
            interrupted=interrupted, duration=time.monotonic() - started,
        )
        bus.emit(events.RunFinished(run_id=run_id, totals=totals, exit_code=summary.exit_code,
                                    duration=summary.duration, interrupted=interrupted))
        return summary
    finally:
        for sink in sinks:
            with contextlib.suppress(Exception):
                sink.close()
