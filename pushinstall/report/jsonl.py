"""The JSONL sink: one JSON object per event, one per line, flushed per event.

A killed run keeps every line written before it died. Events hold no secrets (the engine masks
them); a `Redactor` given here masks the line again, as a second line of defence.

Each line has `at`, its time as ISO 8601 UTC, beside `time` (epoch seconds). The first line of a
file also carries `"schema": JSONL_SCHEMA`, the version of this line format.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO

from pushinstall.events import Event
from pushinstall.report.collect import iso
from pushinstall.secret import Redactor

JSONL_SCHEMA = 1


class JsonlSink:
    """Appends events to `path` (parents created) as JSON lines."""

    def __init__(self, path: str | Path, redactor: Redactor | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.redactor = redactor
        self._file: IO[str] | None = self.path.open("a", encoding="utf-8")
        self._first = self._file.tell() == 0

    def emit(self, event: Event) -> None:
        """Write one event as one line and flush it."""
        if self._file is None:
            return
        data = event.to_dict()
        data["at"] = iso(event.time)
        if self._first:
            data["schema"], self._first = JSONL_SCHEMA, False
        line = json.dumps(data, ensure_ascii=False, default=str)
        if self.redactor is not None:
            line = self.redactor.redact(line)
        self._file.write(line + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file; safe to call twice."""
        if self._file is not None:
            self._file.close()
            self._file = None
