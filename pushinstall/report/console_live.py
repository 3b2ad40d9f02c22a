"""The live console for a terminal: a progress bar over hosts, the hosts in flight, a recap.

While the run goes, rich redraws (a few times a second) a bar with the hosts done, the counts by
status, and each host in flight with its current step and how long that step has run. Failures
print above the bar as they happen, so they stay on screen after it is gone. At the end the bar
goes and a recap table stays: one row per host, failed hosts first, with the first line of the
first error. `make_console` picks this sink on a TTY and the plain one (`console.ConsoleSink`)
everywhere else.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import TextIO

from rich.console import Console, Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from pushinstall import events
from pushinstall.events import Sink
from pushinstall.model import Status
from pushinstall.report.console import RECAP_COLUMNS, ConsoleSink

# worst first: the recap puts the hosts someone must look at on top
SEVERITY = {Status.FAILED: 0, Status.UNREACHABLE: 1, Status.DRIFTED: 2,
            Status.REBOOT_PENDING: 3, Status.CHANGED: 4, Status.SKIPPED: 5, Status.OK: 6,
            Status.COMPLIANT: 6}
STYLES = {Status.OK: "green", Status.COMPLIANT: "green", Status.CHANGED: "yellow",
          Status.FAILED: "bold red", Status.UNREACHABLE: "bold red", Status.DRIFTED: "bold red",
          Status.SKIPPED: "dim", Status.REBOOT_PENDING: "magenta"}
IN_FLIGHT_ROWS = 12


def make_console(stream: TextIO | None = None, verbose: int = 0, diff: bool = False,
                 color: bool = True) -> Sink:
    """The live view when `stream` (stdout) is a terminal (and `verbose` below 2), else
    timestamped plain lines.

    Colour is off when `color` is False or `NO_COLOR` is set (https://no-color.org)."""
    stream = stream or sys.stdout
    # -vv traces the wire on stderr, line by line: a redrawn view would tear those lines
    if stream.isatty() and os.environ.get("TERM") != "dumb" and verbose < 2:
        return LiveConsole(stream, verbose, diff, color and not os.environ.get("NO_COLOR"))
    return ConsoleSink(stream, verbose=verbose, diff=diff, timestamps=True)


class LiveConsole:
    """A rich `Live` view of the run; every public method is safe from the engine's threads."""

    def __init__(self, stream: TextIO, verbose: int = 0, diff: bool = False,
                 color: bool = True) -> None:
        self.console = Console(file=stream, force_terminal=True, no_color=not color,
                               highlight=False)
        self.verbose = verbose
        self.diff = diff
        self.lock = threading.Lock()
        self.mode = "run"
        self.order: list[str] = []
        self.in_flight: dict[str, tuple[str, float]] = {}   # host -> (step, since)
        self.finished: dict[str, events.HostFinished] = {}
        self.first_error: dict[str, str] = {}
        self.live: object | None = None

    # ---- what rich redraws ----------------------------------------------------------------

    def __rich__(self) -> RenderableType:
        with self.lock:
            done, total = len(self.finished), max(len(self.order), 1)
            counts: dict[str, int] = {}
            for finished in self.finished.values():
                counts[finished.status] = counts.get(finished.status, 0) + 1
            flight = sorted(self.in_flight.items(), key=lambda item: item[1][1])
        line = Text(f" {done}/{len(self.order)} hosts  ")
        for status in sorted(counts, key=lambda s: SEVERITY.get(Status(s), 9)):
            line.append(f"{status}={counts[status]} ", style=STYLES.get(Status(status), ""))
        bar = ProgressBar(total=total, completed=done, width=40)
        rows = Table.grid(padding=(0, 2))
        now = time.monotonic()
        for host, (step, since) in flight[:IN_FLIGHT_ROWS]:
            rows.add_row(Text(host, style="bold"), Text(step), Text(f"{now - since:5.1f}s"))
        if len(flight) > IN_FLIGHT_ROWS:
            rows.add_row(Text(f"... {len(flight) - IN_FLIGHT_ROWS} more in flight", "dim"))
        head = Table.grid(padding=(0, 1))
        head.add_row(bar, line)
        return Group(head, rows)

    # ---- the sink -------------------------------------------------------------------------

    def emit(self, event: events.Event) -> None:
        """Update the view; print failures (and, with -v, every step) above it."""
        if isinstance(event, events.RunStarted):
            self._start(event)
        elif isinstance(event, events.HostStarted):
            with self.lock:
                self.in_flight[event.host] = ("connecting", time.monotonic())
        elif isinstance(event, events.StepStarted):
            with self.lock:
                self.in_flight[event.host] = (event.step, time.monotonic())
        elif isinstance(event, events.StepResult):
            self._step(event)
        elif isinstance(event, events.RebootEvent):
            self._print(event.host, f"rebooted for step '{event.step}' "
                        f"({event.duration:.1f}s)", "magenta")
        elif isinstance(event, events.HostFinished):
            self._host_finished(event)
        elif isinstance(event, events.RunFinished):
            self._stop()
            self._recap(event)

    def _start(self, event: events.RunStarted) -> None:
        from rich.live import Live

        self.mode, self.order = event.mode, list(event.hosts)
        self.console.print(f"[bold]{event.mode}[/bold] {event.playbook} on "
                           f"{len(event.hosts)} host(s)  [dim]\\[{event.run_id}][/dim]",
                           markup=True)
        live = Live(self, console=self.console, refresh_per_second=4, transient=True)
        live.start()
        self.live = live

    def _print(self, host: str, text: str, style: str = "") -> None:
        self.console.print(Text.assemble((host, "bold"), "  ", (text, style)))

    def _step(self, event: events.StepResult) -> None:
        if event.status == Status.FAILED and event.host not in self.first_error:
            self.first_error[event.host] = f"{event.step}: {event.message}"
        loud = event.status in (Status.FAILED, Status.DRIFTED)
        if not (loud or self.verbose or (event.status == Status.CHANGED and self.diff)):
            return
        text = f"step '{event.step}'  {event.status}"
        if event.message:
            text += f": {event.message}"
        self._print(event.host, text, STYLES.get(event.status, ""))
        if event.diff and (loud or self.diff):
            self.console.print(Text("    " + event.diff.replace("\n", "\n    "), "dim"))
        for line in event.log_tail[-5:] if event.status == Status.FAILED else []:
            self.console.print(Text(f"    | {line}", "dim"))

    def _host_finished(self, event: events.HostFinished) -> None:
        with self.lock:
            self.in_flight.pop(event.host, None)
            self.finished[event.host] = event
        if event.message and event.host not in self.first_error:
            self.first_error[event.host] = event.message
        if event.status in (Status.UNREACHABLE,) or (event.status == Status.FAILED
                                                      and event.message):
            self._print(event.host, f"{event.status}: {event.message}",
                        STYLES.get(event.status, ""))

    def _stop(self) -> None:
        live, self.live = self.live, None
        if live is not None:
            live.stop()  # type: ignore[attr-defined]

    def _recap(self, event: events.RunFinished) -> None:
        columns = RECAP_COLUMNS + ((Status.DRIFTED,) if self.mode == "check" else ())
        table = Table(title="RECAP", title_justify="left")
        for name in ("host", *columns, "duration", "status", "first error"):
            table.add_column(name, justify="right" if name in columns else "left",
                             overflow="fold")
        position = {h: i for i, h in enumerate(self.order)}
        hosts = sorted(self.finished.values(), key=lambda f: (
            SEVERITY.get(f.status, 9), position.get(f.host, len(position))))
        for finished in hosts:
            error = self.first_error.get(finished.host, "").splitlines()
            table.add_row(finished.host, *(str(finished.counts.get(c, 0)) for c in columns),
                          f"{finished.duration:.1f}s",
                          Text(finished.status, STYLES.get(finished.status, "")),
                          error[0] if error else "")
        self.console.print(table)
        totals = ", ".join(f"{n} {s}" for s, n in sorted(event.totals.items()))
        tail = "  (interrupted)" if event.interrupted else ""
        self.console.print(f"{len(self.finished)} host(s): {totals or 'none'} in "
                           f"{event.duration:.1f}s, exit {event.exit_code}{tail}")

    def close(self) -> None:
        """Stop the live view if the run ended without a RunFinished (it always restores the
        terminal: the cursor comes back)."""
        self._stop()
        self.console.file.flush()
