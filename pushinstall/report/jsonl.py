"""The JSONL sink: one JSON object per event, one per line, flushed per event.

A killed run keeps every line written before it died. Events hold no secrets (the engine masks
them); a `Redactor` given here masks the line again, as a second line of defence.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO

from pushinstall.events import Event
from pushinstall.secret import Redactor


class JsonlSink:
    """Appends events to `path` (parents created) as JSON lines."""

    def __init__(self, path: str | Path, redactor: Redactor | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.redactor = redactor
        self._file: IO[str] | None = self.path.open("a", encoding="utf-8")

    def emit(self, event: Event) -> None:
        """Write one event as one line and flush it."""
        if self._file is None:
            return
        line = json.dumps(event.to_dict(), ensure_ascii=False, default=str)
        if self.redactor is not None:
            line = self.redactor.redact(line)
        self._file.write(line + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file; safe to call twice."""
        if self._file is not None:
            self._file.close()
            self._file = None
