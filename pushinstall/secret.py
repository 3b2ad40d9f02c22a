"""Secrets: values that must never appear in output, logs, reports or exceptions."""

from __future__ import annotations

MASK = "********"


class Secret:
    """A secret string. `str()` and `repr()` show a mask; `reveal()` gives the value.

    Only code that sends the value to a target (as data, never in a command line) calls
    `reveal()`.
    """

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str = "") -> None:
        self._value = value
        self.source = source

    def reveal(self) -> str:
        """The secret value itself."""
        return self._value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({MASK})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class Redactor:
    """Replaces every known secret value in text with the mask."""

    def __init__(self) -> None:
        self._values: set[str] = set()

    def add(self, value: str | Secret) -> None:
        """Remember a secret value (strings shorter than 3 characters are not masked)."""
        text = value.reveal() if isinstance(value, Secret) else value
        if len(text) >= 3:
            self._values.add(text)

    def redact(self, text: str) -> str:
        """`text` with every known secret replaced by the mask, longest first."""
        for value in sorted(self._values, key=len, reverse=True):
            text = text.replace(value, MASK)
        return text
