"""Worker processes: a fleet's hosts spread over several Python processes, as Ansible's forks.

One CPython process runs Python on one core at a time. Past a few dozen hosts in flight the
controller's own CPU per op call (templating, JSON, XML and message encryption on the wire
transports) bounds a run, not the network. With `workers` > 1 the engine forks that many
processes when the run starts; each runs, in its own thread pool, the host pipelines the
parent hands it, and sends every event and each host's outcome back over a pipe; the sinks
that append for themselves (the JSONL logs, `appends_from_workers`) it writes directly, so a
killed parent loses no event a worker had made. The parent
keeps the schedule (batches, `forks` in flight, `max_fail_percentage`, the host deadline,
Ctrl-C) exactly as with one process.

Children are forked, so hosts, playbook and resolved secrets are inherited, never serialized;
what comes back is events and outcomes, which carry no secrets (messages are redacted before an
event is made). Children ignore SIGINT and SIGTERM: the parent relays a stop; a child whose
parent is gone (its command pipe ends) stops its hosts too. A child that dies fails the hosts
it had. POSIX only (fork); elsewhere `available()` is False and the run stays in one
process.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import multiprocessing
import os
import queue
import signal
import threading
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from pushinstall import events
from pushinstall.engine.host import HostOutcome
from pushinstall.events import Sink
from pushinstall.model import Host, Status

HOSTS_PER_WORKER = 50     # `auto`: one worker per this many forks (and hosts), one per CPU
COLLECT_EVERY = 1000      # hosts a worker runs between two passes of the cyclic collector

# (host, emit, stop_requested) -> the host's pipeline, run in a worker thread
PipelineMaker = Callable[[Host, Callable[[events.Event], None], Callable[[], bool]],
                         Callable[[], HostOutcome]]


def _nothing() -> None:
    """The default hook: nothing to do."""


@dataclass(frozen=True)
class ProcessHooks:
    """What the runner asks of a run's processes, without the engine knowing why (the lab's
    simulated hosts live in this process's memory and are saved write-behind):
    `before_fork` runs in the parent before workers fork, so they start from what it did;
    `at_worker_exit` runs in each worker as it ends (a forked child skips exit handlers)."""

    before_fork: Callable[[], None] = _nothing
    at_worker_exit: Callable[[], None] = _nothing


def available() -> bool:
    """True where worker processes can be forked."""
    return "fork" in multiprocessing.get_all_start_methods()


def auto_workers(forks: int, hosts: int) -> int:
    """How many processes `auto` picks: one per HOSTS_PER_WORKER forks and hosts, at most one
    per CPU, at least one."""
    if not available():
        return 1
    return max(1, min(os.cpu_count() or 1, forks // HOSTS_PER_WORKER,
                      hosts // HOSTS_PER_WORKER))


def _child_main(hosts: list[Host], make: PipelineMaker, threads: int, hooks: ProcessHooks,
                commands: Connection, results: Connection, others: list[Connection],
                local: Callable[[], Sink]) -> None:
    """A worker: run the hosts the parent names until it says end; then its exit hook.
    `others`: the parent's ends of every pipe so far, this worker's own included, which are
    not ours to hold (a copy of the command pipe's write end would hide the parent's death).
    `local()` gives what this worker writes its hosts' events to itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # and so is SIGTERM (to the whole group)
    for connection in others:
        connection.close()
    # A worker lives for one run. The cyclic collector's passes cost it ~15% of its CPU; its
    # cyclic garbage (a little per host) is collected every COLLECT_EVERY hosts instead.
    gc.disable()
    finished = itertools.count(1)
    stop = threading.Event()
    # host threads only queue (no lock held across a system call, no GIL convoy); one
    # thread sends whatever has queued up as one message
    outbox: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
    sender = threading.Thread(target=_send_all, args=(outbox, results), daemon=True)
    sender.start()
    send = outbox.put
    own = local()
    dropped: set[str] = set()    # hosts the parent gave up on (deadline)

    def emit(event: events.Event) -> None:
        if getattr(event, "host", None) in dropped:
            return
        own.emit(event)
        send(("event", event))

    def job(index: int) -> None:
        host = hosts[index]
        if stop.is_set():          # queued here when Ctrl-C came: never started
            send(("done", index, None))
            return
        send(("started", index))
        outcome = make(host, emit, stop.is_set)()   # fails the host itself on a bug
        send(("done", index, outcome))
        if next(finished) % COLLECT_EVERY == 0:
            gc.collect()

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="pushinstall-host") as pool:
        while True:
            try:
                message = commands.recv()
            except EOFError:       # the parent is gone
                stop.set()
                break
            if message[0] == "host":
                pool.submit(job, message[1])
            elif message[0] == "stop":
                stop.set()
            elif message[0] == "drop":
                dropped.add(hosts[message[1]].name)
            else:                  # "end"
                break
    hooks.at_worker_exit()
    send(("bye",))
    send(None)
    sender.join()


def _send_all(outbox: queue.SimpleQueue[tuple[Any, ...] | None],
              results: Connection | None) -> None:
    """Send queued messages in batches until the None that ends them."""
    while True:
        batch = [outbox.get()]
        while not outbox.empty() and batch[-1] is not None:
            batch.append(outbox.get())
        done = batch[-1] is None
        if done:
            batch.pop()
        if batch and results is not None:
            try:
                results.send(batch)
            except OSError:    # the parent is gone: nobody to tell; keep draining
                results = None
        if done:
            return


class _Worker:
    """The parent's handle on one child: its pipes, the hosts it has, its reader thread."""

    def __init__(self, process: multiprocessing.process.BaseProcess, commands: Connection,
                 results: Connection) -> None:
        self.process = process
        self.commands = commands
        self.results = results
        self.pending: dict[int, tuple[Future[None], Future[HostOutcome | None]]] = {}
        self.lock = threading.Lock()
        self.reader: threading.Thread | None = None
        self.alive = True

    def send(self, message: tuple[Any, ...]) -> None:
        with self.lock:
            self.commands.send(message)


class WorkerPool:
    """`count` forked workers running host pipelines; `submit` hands one host to the least
    busy. Use as a context manager: leaving it ends the children (kills them on an error)."""

    def __init__(self, count: int, hosts: list[Host], make: PipelineMaker, threads: int,
                 emit: Callable[[events.Event], None],
                 relay: Callable[[events.Event], None] | None = None,
                 local: Callable[[], Sink] | None = None,
                 hooks: ProcessHooks = ProcessHooks()) -> None:
        """`emit` takes this process's own events, `relay` the workers' (default `emit`);
        `local()`, called in each worker, gives the sink it writes its events to itself."""
        self.hosts = hosts
        self.index = {host.name: i for i, host in enumerate(hosts)}
        self.emit = emit
        self.relay = relay or emit
        self._workers: list[_Worker] = []
        context = multiprocessing.get_context("fork")
        hooks.before_fork()
        # the collector in a child need not visit (and so copy) inherited objects; nor need
        # this process's, while the run goes on: they stay frozen until `close`
        gc.freeze()
        try:
            for number in range(count):   # all forks before any thread of ours starts
                commands_out, commands_in = context.Pipe(duplex=False)
                results_out, results_in = context.Pipe(duplex=False)
                # the parent's ends, the new worker's own too: a child holding a copy of its
                # command pipe's write end would never see EOF when the parent dies
                others = [c for w in self._workers for c in (w.commands, w.results)]
                others += [commands_in, results_out]
                share = threads // count + (1 if number < threads % count else 0)
                process = context.Process(
                    target=_child_main, name="pushinstall-worker", daemon=True,
                    args=(hosts, make, max(1, share), hooks, commands_out, results_in, others,
                          local or _NoSink))
                process.start()
                commands_out.close()
                results_in.close()
                self._workers.append(_Worker(process, commands_in, results_out))
        except BaseException:
            for worker in self._workers:
                worker.process.kill()
            gc.unfreeze()
            raise
        for worker in self._workers:
            worker.reader = threading.Thread(target=self._read, args=(worker,), daemon=True,
                                             name="pushinstall-worker-reader")
            worker.reader.start()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        self.close(kill=kind is not None)

    def submit(self, host: Host) -> tuple[Future[None], Future[HostOutcome | None]]:
        """Run `host`'s pipeline in the worker with the fewest hosts: (started, done). A
        worker keeps a few hosts queued, so `started` says when the host's pipeline began;
        `done` holds its outcome, None when it never started (Ctrl-C came while queued)."""
        started: Future[None] = Future()
        done: Future[HostOutcome | None] = Future()
        for future in (started, done):
            future.set_running_or_notify_cancel()
        index = self.index[host.name]
        alive = [w for w in self._workers if w.alive]
        if not alive:
            _settle(started, None)
            _settle(done, _failed(host.name, "no engine worker process is left", self.emit))
            return started, done
        worker = min(alive, key=lambda w: len(w.pending))
        with worker.lock:
            worker.pending[index] = (started, done)
        try:
            worker.send(("host", index))
        except OSError:
            self._fail(worker, index, "the worker process is gone")
        return started, done

    def give_up(self, host: Host) -> None:
        """The parent ended `host` (deadline): its worker drops what the host says later."""
        index = self.index[host.name]
        for worker in self._workers:
            if index in worker.pending:
                with contextlib.suppress(OSError):
                    worker.send(("drop", index))

    def stop(self) -> None:
        """Ctrl-C: hosts in flight stop after their current step."""
        for worker in self._workers:
            with contextlib.suppress(OSError):
                worker.send(("stop",))

    def close(self, kill: bool = False) -> None:
        """End every worker (after the hosts it has) and wait for it; `kill` does not wait."""
        for worker in self._workers:
            if kill:
                worker.process.kill()
                continue
            with contextlib.suppress(OSError):
                worker.send(("end",))
        for worker in self._workers:
            worker.process.join()
            if worker.reader is not None:
                worker.reader.join()
            worker.commands.close()
            worker.results.close()
        gc.unfreeze()

    def _read(self, worker: _Worker) -> None:
        """Events to the parent's sinks, outcomes to their futures, until the child ends."""
        ended = False
        while not ended:
            try:
                batch = worker.results.recv()
            except (EOFError, OSError):
                break
            for message in batch:   # in order: a host's events come before its outcome
                if message[0] == "event":
                    self.relay(message[1])
                elif message[0] == "started":
                    with worker.lock:
                        futures = worker.pending.get(message[1])
                    if futures is not None:
                        _settle(futures[0], None)
                elif message[0] == "done":
                    with worker.lock:
                        futures = worker.pending.pop(message[1], None)
                    if futures is not None:
                        _settle(futures[0], None)
                        _settle(futures[1], message[2])
                else:                  # "bye"
                    ended = True
        worker.alive = False
        worker.process.join()
        for index in list(worker.pending):
            self._fail(worker, index, f"the worker process ended (exit code "
                                      f"{worker.process.exitcode}) while running this host")

    def _fail(self, worker: _Worker, index: int, message: str) -> None:
        with worker.lock:
            futures = worker.pending.pop(index, None)
        if futures is not None:
            _settle(futures[0], None)
            _settle(futures[1], _failed(self.hosts[index].name, message, self.emit))


def _failed(name: str, message: str, emit: Callable[[events.Event], None]) -> HostOutcome:
    """A host that failed for want of a worker: its HostFinished event and outcome."""
    emit(events.HostFinished(host=name, status=Status.FAILED, message=message))
    return HostOutcome(name, Status.FAILED, message)


class _NoSink:
    """A worker with nothing to write itself."""

    def emit(self, event: events.Event) -> None:
        """Nothing."""

    def close(self) -> None:
        """Nothing."""


def _settle(future: Future[Any], outcome: Any) -> None:
    with contextlib.suppress(InvalidStateError):   # the parent gave up on it (deadline)
        future.set_result(outcome)
