"""The Jinja2 sandbox playbook templates render in: secrets opaque, work and output bounded.

A template comes from an inventory or playbook, which may be hostile or just wrong; rendering
one must end quickly and in bounded memory, so validate can say where it is wrong:

- no attribute or method of a `Secret` can be reached (`reveal()` would read it in clear);
- work: the items `range()` makes and the items every `{% for %}` takes share one budget of
  `MAX_LOOP_ITEMS` per rendering, so nested loops over a big list or string cannot multiply
  their work;
- size: no step may build a string or list longer than `MAX_OUTPUT` — checked BEFORE the
  step, where one step can grow a value past any bound: `*`, `+`, `~`, `%`, `join`,
  `replace`, padding to a width (`center`, `ljust`, `rjust`, `zfill`, `indent`, `format`),
  `expandtabs`, and turning a value into text (`{{ }}`, `string`, `tojson`, `pprint`, ...),
  where a list holding the same big list many times is measured as the text it would be;
- `**` may not make an integer longer than `MAX_POWER_BITS`;
- a rendering longer than `MAX_OUTPUT` characters is refused.

Every refusal is a `jinja2.exceptions.SecurityError`, which the renderer reports located.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg

from pushinstall.secret import Secret

MAX_OUTPUT = 1_000_000         # characters; a Windows command line stops at 32,767
MAX_POWER_BITS = 65536          # a ** b: the result's size, not b alone ((2**4096)**4096)
MAX_LOOP_ITEMS = 1_000_000     # per rendering: range() items plus items taken by {% for %}

_budget = threading.local()    # engine workers render in threads: one budget each
_WIDTH = re.compile(r"%[-#0 +]*(\d+)|%[-#0 +]*\d*\.(\d+)|\{[^{}]*?:[^{}]*?(\d+)[^{}]*\}")
# filters and methods whose value becomes text: the value is measured first
_TEXT_OF_VALUE = frozenset({"string", "tojson", "pprint", "e", "escape", "forceescape", "safe",
                            "upper", "lower", "title", "capitalize", "trim", "striptags",
                            "urlencode", "urlize", "wordwrap", "wordcount", "truncate",
                            "xmlattr", "format", "format_map", "indent", "center", "replace"})
_PAD = frozenset({"center", "ljust", "rjust", "zfill"})


def start_budget() -> None:
    """Give the next rendering on this thread its full loop budget."""
    _budget.left = MAX_LOOP_ITEMS


def _spend(items: int) -> None:
    left = getattr(_budget, "left", MAX_LOOP_ITEMS) - items
    if left < 0:
        raise SecurityError(f"the template loops over more than {MAX_LOOP_ITEMS} items")
    _budget.left = left


def _range(*args: int) -> range:
    items = range(*args)
    _spend(len(items))
    return items


def _counted(iterable: Iterable[Any]) -> Iterator[Any]:
    """`iterable`, each item taken from the loop budget."""
    for item in iterable:
        _spend(1)
        yield item


def _too_long() -> SecurityError:
    return SecurityError(f"the template builds a value over {MAX_OUTPUT} long")


def measure(value: Any, limit: int = MAX_OUTPUT) -> int:
    """About how long `value` is as text, counting a list that holds one big list many times
    as many times; stops once past `limit` (so the walk itself is bounded)."""
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, dict):
            total += 2 + 4 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += 2 + 2 * len(item)
            stack.extend(item)
        elif isinstance(item, str):
            total += len(item)
        else:
            total += 8
    return total


def _check_text(value: Any) -> None:
    if measure(value) > MAX_OUTPUT:
        raise _too_long()


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _check_growth(name: str, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse a call of filter or str method `name` whose result would pass `MAX_OUTPUT`."""
    if name not in _TEXT_OF_VALUE and name not in ("join", "expandtabs", *_PAD):
        return   # `length` of a 100k-host list need not walk it
    size = measure(value)
    if name in _TEXT_OF_VALUE and size > MAX_OUTPUT:
        raise _too_long()
    if name == "replace" and len(args) >= 2 and isinstance(value, str):
        old, new = str(args[0]), str(args[1])
        count = value.count(old) if old else len(value) + 1
        if size + count * max(0, len(new) - len(old)) > MAX_OUTPUT:
            raise _too_long()
    elif name == "join" and isinstance(value, (list, tuple)):   # the filter: value|join(sep)
        sep = str(args[0] if args else kwargs.get("d", ""))
        if size + len(sep) * len(value) > MAX_OUTPUT:
            raise _too_long()
    elif name in _PAD or name == "indent":
        width = _int(args[0] if args else kwargs.get("width", 0))
        lines = value.count("\n") + 1 if isinstance(value, str) else 1
        if width * (lines if name == "indent" else 1) > MAX_OUTPUT:
            raise _too_long()
    elif name == "expandtabs" and isinstance(value, str):
        if value.count("\t") * _int(args[0] if args else kwargs.get("tabsize", 8)) > MAX_OUTPUT:
            raise _too_long()
    elif name in ("format", "format_map") and isinstance(value, str):
        _check_widths(value)
        for arg in (*args, *kwargs.values()):
            _check_text(arg)


def _check_widths(text: str) -> None:
    """A `%`/`format` string may not pad a field wider than `MAX_OUTPUT`."""
    for match in _WIDTH.finditer(text):
        if any(group and int(group) > MAX_OUTPUT for group in match.groups()):
            raise _too_long()


def _sized(value: Any) -> int:
    return len(value) if isinstance(value, (str, list, tuple)) else 0


def _guarded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """Filter `func` with its growth checked before and its result's length after."""
    skip = 0 if _PassArg.from_obj(func) is None else 1   # context/environment comes first

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if len(args) > skip:
            _check_growth(name, args[skip], args[skip + 1:], kwargs)
        result = func(*args, **kwargs)
        if _sized(result) > MAX_OUTPUT:
            raise _too_long()
        return result
    return guarded


class _BoundedCode(CodeGenerator):
    """Jinja2's code generator, except that every `{% for %}` takes its items through the
    loop budget and every `~` measures its parts before joining them."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        """The loop over `counted(iterable)`."""
        if not (isinstance(node.iter, nodes.Call)
                and isinstance(node.iter.node, nodes.EnvironmentAttribute)):
            node.iter = nodes.Call(nodes.EnvironmentAttribute("counted"), [node.iter], [],
                                   None, None, lineno=node.lineno)
        super().visit_For(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        """`a ~ b` as `environment.bounded_concat(join, (a, b))`: its parts measured first."""
        if frame.eval_ctx.volatile:
            join = "(markup_join if context.eval_ctx.volatile else str_join)"
        else:
            join = "markup_join" if frame.eval_ctx.autoescape else "str_join"
        self.write(f"environment.bounded_concat({join}, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox with the limits of this module."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _BoundedCode

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, keep_trailing_newline=True,
                         finalize=self._finalize)
        self.globals["range"] = _range
        self.filters = {name: _guarded_filter(name, func) for name, func in self.filters.items()}

    counted = staticmethod(_counted)

    @staticmethod
    def _finalize(value: Any) -> Any:
        """Each `{{ }}` value, measured before it becomes text."""
        if isinstance(value, (list, tuple, dict, set, frozenset)):
            _check_text(value)
        return value

    @staticmethod
    def bounded_concat(join: Callable[[Iterable[Any]], str], parts: tuple[Any, ...]) -> str:
        """`a ~ b`: the parts measured as the text they become, then joined."""
        if sum(measure(part) for part in parts) > MAX_OUTPUT:
            raise _too_long()
        return join(parts)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        """No attribute of a secret; otherwise as Jinja2's sandbox says."""
        if isinstance(obj, Secret):
            return False
        return bool(super().is_safe_attribute(obj, attr, value))

    def call(__self, __context: Context, __obj: Any,   # Jinja2 names the arguments so
             *args: Any, **kwargs: Any) -> Any:
        """A call from a template; a str method's growth checked before it runs."""
        # the sandbox hands str.format out wrapped; the str is the wrapped method's __self__
        owner = getattr(getattr(__obj, "__wrapped__", __obj), "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(owner, str):
            if name == "join" and args:   # sep.join(items)
                items = args[0]
                if isinstance(items, (list, tuple)) and \
                        measure(items) + len(owner) * len(items) > MAX_OUTPUT:
                    raise _too_long()
            else:
                _check_growth(name, owner, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        if _sized(result) > MAX_OUTPUT:
            raise _too_long()
        return result

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """`*`, `+`, `%` and `**` with their results bounded before they are computed."""
        if operator == "*":
            count = right if _sized(left) else left
            length = max(_sized(left), _sized(right))
            if length and isinstance(count, int) and length * count > MAX_OUTPUT:
                raise _too_long()
        elif operator == "+":
            if _sized(left) + _sized(right) > MAX_OUTPUT:
                raise _too_long()
        elif operator == "%":
            if isinstance(left, str):
                _check_widths(left)
                _check_text(right)
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
