"""The JSONL sink: one JSON object per event, one per line, written as it happens.

A killed run keeps every line written before it died: each line is one `write(2)` to a file
opened with O_APPEND, so the engine's worker processes (which inherit this sink across fork,
`appends_from_workers`) append their hosts' events to the same file themselves, and lines
never interleave. Events hold no secrets (the engine masks them); a `Redactor` given here
masks the line again, as a second line of defence.

Each line has `at`, its time as ISO 8601 UTC, beside `time` (epoch seconds). The first line of a
file also carries `"schema": JSONL_SCHEMA`, the version of this line format.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pushinstall.events import Event
from pushinstall.report.collect import iso
from pushinstall.secret import Redactor

JSONL_SCHEMA = 1


class JsonlSink:
    """Appends events to `path` (parents created) as JSON lines."""

    appends_from_workers = True

    def __init__(self, path: str | Path, redactor: Redactor | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.redactor = redactor
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._first = os.fstat(self._fd).st_size == 0

    def emit(self, event: Event) -> None:
        """Write one event as one line, in one system call (no buffer to lose)."""
        if self._fd is None:
            return
        data = event.to_dict()
        data["at"] = iso(event.time)
        if self._first:
            data["schema"], self._first = JSONL_SCHEMA, False
        line = json.dumps(data, ensure_ascii=False, default=str)
        if self.redactor is not None:
            line = self.redactor.redact(line)
        raw = (line + "\n").encode("utf-8")
        while raw:   # a regular file takes it whole unless the disk is full
            raw = raw[os.write(self._fd, raw):]

    def close(self) -> None:
        """Close the file; safe to call twice."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
