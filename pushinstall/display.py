"""Text from a target made safe to show: no control characters reach a terminal or a report.

A target's output and error messages are data an attacker on that host controls. Raw ANSI
escapes would drive the admin's terminal (retitle it, hide lines, fake a green recap), NUL and
other C0 characters make `junit.xml` invalid XML, bidi overrides reorder what a reader sees.
`printable` escapes them as visible `\\xNN` / `\\uNNNN` text; newlines and tabs stay, since
diffs and output tails are multi-line. Events get it once, at the engine's bus, so every sink
(console, JSONL, JSON, JUnit, HTML, history) shows the same escaped text.
"""

from __future__ import annotations

import re
from dataclasses import fields
from typing import Any

# C0 but \t and \n; DEL and C1; lone surrogates (not valid XML); bidi and other invisible
# format characters that reorder or hide text.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u200b-\u200f\u202a-\u202e"
                     "\u2066-\u2069\ufeff\ufffe\uffff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every control or invisible format character escaped (idempotent)."""
    return _UNSAFE.sub(_escape, text) if _UNSAFE.search(text) else text


def clean_event(event: Any) -> Any:
    """Escape, in place, every text field of a dataclass event; return it."""
    for item in fields(event):
        value = getattr(event, item.name)
        if isinstance(value, str):
            setattr(event, item.name, printable(value))
        elif isinstance(value, list) and any(isinstance(v, str) for v in value):
            setattr(event, item.name, [printable(v) if isinstance(v, str) else v
                                       for v in value])
    return event
