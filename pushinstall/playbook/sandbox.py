"""The Jinja2 sandbox playbook templates render in: secrets opaque, work and output bounded.

A template comes from an inventory or playbook, which may be hostile or just wrong; rendering
one must end quickly and in bounded memory, so validate can say where it is wrong:

- no attribute or method of a `Secret` can be reached (`reveal()` would read it in clear);
- `*` may not build a string or list longer than `MAX_OUTPUT`, `**` may not make an integer
  longer than `MAX_POWER_BITS`;
- `range()` gives at most `MAX_RANGE_ITEMS` items per rendering, summed over every call, so
  nested loops cannot multiply their work;
- a rendering longer than `MAX_OUTPUT` characters is refused.

Every refusal is a `jinja2.exceptions.SecurityError`, which the renderer reports located.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from jinja2 import StrictUndefined
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from pushinstall.secret import Secret

MAX_OUTPUT = 1_000_000         # characters; a Windows command line stops at 32,767
MAX_POWER_BITS = 65536          # a ** b: the result's size, not b alone ((2**4096)**4096)
MAX_RANGE_ITEMS = 1_000_000    # per rendering, over every range() call

_budget = threading.local()    # engine workers render in threads: one budget each


def start_budget() -> None:
    """Give the next rendering on this thread its full `range()` budget."""
    _budget.left = MAX_RANGE_ITEMS


def _range(*args: int) -> range:
    items = range(*args)
    left = getattr(_budget, "left", MAX_RANGE_ITEMS) - len(items)
    if left < 0:
        raise SecurityError(f"the template loops over more than {MAX_RANGE_ITEMS} items")
    _budget.left = left
    return items


def _sized(value: Any) -> int:
    return len(value) if isinstance(value, (str, list, tuple)) else 0


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox with the limits of this module."""

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, keep_trailing_newline=True)
        self.globals["range"] = _range

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        """No attribute of a secret; otherwise as Jinja2's sandbox says."""
        if isinstance(obj, Secret):
            return False
        return bool(super().is_safe_attribute(obj, attr, value))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """`*` and `**` with their results bounded before they are computed."""
        if operator == "*":
            count = right if _sized(left) else left
            length = max(_sized(left), _sized(right))
            if length and isinstance(count, int) and length * count > MAX_OUTPUT:
                raise SecurityError(f"the template builds a value over {MAX_OUTPUT} long")
        elif (isinstance(left, int) and isinstance(right, (int, float)) and abs(left) > 1
              and abs(right) * left.bit_length() > MAX_POWER_BITS):
            raise SecurityError(f"the template computes a number over {MAX_POWER_BITS} bits")
        return super().call_binop(context, operator, left, right)


def bounded(chunks: Iterator[str]) -> str:
    """Join a template's output, refusing it once it passes `MAX_OUTPUT` characters."""
    parts, size = [], 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_OUTPUT:
            raise SecurityError(f"the template renders more than {MAX_OUTPUT} characters")
        parts.append(chunk)
    return "".join(parts)
