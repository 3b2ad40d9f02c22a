"""The console sink: plain lines while the run goes, then the recap.

Lines (cron-friendly, one event a line, host first; with `timestamps` each line starts with
its ISO 8601 time, `2026-12-01T02:00:13Z`):

    web01  step 'Install Mobility service'  changed
    web01  step 'Service svagents'  failed: service 'svagents': expected Running, found Stopped
    db01   unreachable: db01: connection refused (hint: ...)

Always shown: changed, failed and drifted steps, reboots, hosts that end failed, unreachable or
reboot_pending. With `verbose` >= 1 also ok and skipped steps and every host's start and end.
With `diff` a change's diff follows its line, indented. The recap, one line per host:

    web01  ok=5 changed=2 failed=0 unreachable=0 skipped=1  changed
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from pushinstall import events
from pushinstall.model import Status

QUIET_STEPS = {Status.OK, Status.SKIPPED}
LOUD_HOSTS = {Status.FAILED, Status.UNREACHABLE, Status.REBOOT_PENDING, Status.DRIFTED,
              Status.INTERRUPTED}
RECAP_COLUMNS = (Status.OK, Status.CHANGED, Status.FAILED, Status.UNREACHABLE, Status.SKIPPED)


def iso_time(epoch: float | None = None) -> str:
    """`2026-12-01T02:00:13Z`: UTC, to the second (log lines are read, not diffed)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if epoch is None
                                                          else epoch))


class _Stamped:
    """A text stream that puts the time in front of every line written through it."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.at_line_start = True

    def write(self, text: str) -> int:
        out = []
        for piece in text.splitlines(keepends=True):
            if self.at_line_start and piece.strip():
                out.append(f"{iso_time()} ")
            out.append(piece)
            self.at_line_start = piece.endswith("\n")
        return self.stream.write("".join(out))

    def flush(self) -> None:
        self.stream.flush()


class ConsoleSink:
    """Writes plain lines to `stream` (stdout by default)."""

    def __init__(self, stream: TextIO | None = None, verbose: int = 0, diff: bool = False,
                 timestamps: bool = False) -> None:
        # the recap goes to the bare stream: it is one summary at one time, the last line
        # of the run says when, and scripts that read it by columns keep working
        self.bare = stream or sys.stdout
        self.stream: TextIO = _Stamped(self.bare) if timestamps else self.bare  # type: ignore[assignment]
        self.verbose = verbose
        self.diff = diff
        self.mode = "run"
        self.width = 0
        self.finished: dict[str, events.HostFinished] = {}
        self.order: list[str] = []

    def _line(self, host: str, text: str) -> None:
        self.stream.write(f"{host.ljust(self.width)}  {text}\n")

    def emit(self, event: events.Event) -> None:
        """Print what this event says, if it is worth a line at this verbosity."""
        if isinstance(event, events.RunStarted):
            self.mode = event.mode
            self.width = max((len(h) for h in event.hosts), default=0)
            self.order = list(event.hosts)
            self.stream.write(f"{event.mode} {event.playbook} on {len(event.hosts)} host(s)"
                              f"  [{event.run_id}]\n")
        elif isinstance(event, events.HostStarted):
            if self.verbose:
                self._line(event.host, "started")
        elif isinstance(event, events.StepResult):
            self._step(event)
        elif isinstance(event, events.HostWarning):
            self._line(event.host, f"WARNING: {event.message}")
        elif isinstance(event, events.RebootEvent):
            self._line(event.host, f"rebooted for step '{event.step}' ({event.duration:.1f}s)")
        elif isinstance(event, events.HostFinished):
            self.finished[event.host] = event
            if self.verbose or event.status in LOUD_HOSTS:
                text = event.status + (f": {event.message}" if event.message else "")
                self._line(event.host, text)
        elif isinstance(event, events.RunFinished):
            self._recap(event)
        self.stream.flush()

    def _step(self, event: events.StepResult) -> None:
        if event.status in QUIET_STEPS and not self.verbose:
            return
        text = f"step '{event.step}'  {event.status}"
        if event.message and (event.status not in QUIET_STEPS or self.verbose > 1):
            text += f": {event.message}"
        if self.verbose and event.duration:
            text += f"  ({event.duration:.2f}s)"
        self._line(event.host, text)
        show_diff = self.diff or event.status in (Status.FAILED, Status.DRIFTED)
        indent = " " * (self.width + 4)
        if show_diff and event.diff:
            for line in event.diff.splitlines():
                self.stream.write(f"{indent}{line}\n")
        for line in event.log_tail[-5:] if event.status == Status.FAILED else []:
            self.stream.write(f"{indent}| {line}\n")

    def _recap(self, event: events.RunFinished) -> None:
        columns = RECAP_COLUMNS + ((Status.DRIFTED,) if self.mode == "check" else ())
        self.bare.write("\nRECAP\n")
        # inventory order, so two runs' recaps line up (hosts finish in any order)
        ordered = [h for h in self.order if h in self.finished]
        ordered += [h for h in self.finished if h not in set(ordered)]
        for host in ordered:
            finished = self.finished[host]
            counts = " ".join(f"{c}={finished.counts.get(c, 0)}" for c in columns)
            self.bare.write(f"{host.ljust(self.width)}  {counts}  {finished.status}\n")
        totals = ", ".join(f"{n} {s}" for s, n in sorted(event.totals.items()))
        tail = "  (interrupted)" if event.interrupted else ""
        self.stream.write(f"{len(self.finished)} host(s): {totals or 'none'} in "
                          f"{event.duration:.1f}s, exit {event.exit_code}{tail}\n")

    def close(self) -> None:
        """Flush the stream (it is not ours to close)."""
        self.stream.flush()
