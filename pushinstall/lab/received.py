"""What the lab's endpoints received from controllers, for tests that check no secret reaches
a target's logs: every script text and parameter value, as the target would see it.

Off unless a test calls `start()`; the endpoints call `record` for each script or stdin text.
"""

from __future__ import annotations

import threading

_LOCK = threading.Lock()
_TEXTS: list[str] | None = None


def start() -> list[str]:
    """Begin recording; the list fills as endpoints receive texts."""
    global _TEXTS
    with _LOCK:
        _TEXTS = []
        return _TEXTS


def stop() -> None:
    """Stop recording."""
    global _TEXTS
    with _LOCK:
        _TEXTS = None


def record(*texts: str) -> None:
    """Keep `texts` when recording is on."""
    with _LOCK:
        if _TEXTS is not None:
            _TEXTS.extend(texts)
