"""Jinja2 templating for playbooks: sandboxed, `StrictUndefined`, secrets kept secret.

- A string that is exactly one `{{ expression }}` renders to the expression's native value
  (a number stays a number, a `Secret` stays the same `Secret`); any other template renders
  to a string.
- A template whose variables reach a `Secret` (directly or through another var) renders to a
  `TemplatedSecret`: a `Secret` that renders the template with the real values only when
  revealed. Validation therefore never reads an unset secret env var and never prompts.
- Variables may themselves hold templates (`asr_configurator: "{{ asr_dir }}\\agent\\..."`);
  they are rendered when used, and a cycle is an error.
- An undefined variable is an `InputError` at the location of the string that used it,
  naming the variable.
- Rendering is pure, so a string rendered with the same plain values (strings, numbers) is
  rendered once per process: a fleet's hosts mostly share them (`_RENDERED`).
"""

from __future__ import annotations

import functools
import re
from typing import Any

from jinja2 import Undefined, meta, nodes
from jinja2.exceptions import SecurityError, TemplateError, TemplateSyntaxError, UndefinedError

from pushinstall.errors import InputError, Location
from pushinstall.playbook.sandbox import MAX_OUTPUT, Sandbox, bounded, start_budget
from pushinstall.resources.common import reveal as reveal_all
from pushinstall.resources.schema import is_template
from pushinstall.secret import Secret
from pushinstall.source import LocatedDict, LocatedList

ENV = Sandbox()
_WHOLE = re.compile(r"^\{\{(?P<expr>(?:(?!\{\{|\}\}).)*)\}\}$", re.DOTALL)
_MAX_DEPTH = 20
_PLAIN = (str, int, float, bool, type(None))
_RENDERED: dict[tuple[str, tuple[tuple[str, type, Any], ...]], Any] = {}
_RENDERED_MAX = 50_000


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> nodes.Template:
    return ENV.parse(text)


@functools.lru_cache(maxsize=4096)
def _names(text: str) -> frozenset[str]:
    return frozenset(meta.find_undeclared_variables(_parse(text)))


@functools.lru_cache(maxsize=4096)
def _compiled(text: str) -> Any:
    match = _WHOLE.match(text.strip())
    if match:
        return ENV.compile_expression(match.group("expr"), undefined_to_none=False), True
    return ENV.from_string(text), False


@functools.lru_cache(maxsize=4096)
def _expression(text: str) -> Any:
    """`text` compiled as one expression (~3 ms each: every run checks every `when`)."""
    return ENV.compile_expression(text)


def evaluate(compiled: Any, whole: bool, context: dict[str, Any]) -> Any:
    """Run a compiled template or whole expression within the sandbox's work and size
    bounds (`playbook/sandbox.py`)."""
    start_budget()
    if not whole:
        return bounded(compiled.generate(**context))
    result = compiled(**context)
    if isinstance(result, str) and len(result) > MAX_OUTPUT:
        raise SecurityError(f"the template renders more than {MAX_OUTPUT} characters")
    return result


def check_syntax(text: str, location: Location | None) -> None:
    """Raise `InputError` at `location` when `text` is not a valid Jinja template."""
    try:
        _compiled(text)
    except TemplateSyntaxError as error:
        raise InputError(f"template syntax error in '{_short(text)}': {error.message}",
                         location, "a valid Jinja2 template") from None


def expression_text(expression: str) -> str:
    """A `when` expression without an optional `{{ }}` wrapper."""
    text = expression.strip()
    if text.startswith("{{") and text.endswith("}}"):
        text = text[2:-2].strip()
    return text


def check_expression(expression: str, location: Location | None) -> frozenset[str]:
    """Check a `when` expression's syntax; return the variable names it uses."""
    text = expression_text(expression)
    try:
        _expression(text)
        return _names("{{ " + text + " }}")
    except TemplateSyntaxError as error:
        raise InputError(f"'when' is not a valid expression: {error.message}", location,
                         "a Jinja2 expression such as: site == 'ams'") from None


def holds_secret(value: Any) -> bool:
    """True when `value` is or contains a `Secret`."""
    if isinstance(value, Secret):
        return True
    if isinstance(value, dict):
        return any(holds_secret(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(holds_secret(v) for v in value)
    return False


class TemplatedSecret(Secret):
    """A `Secret` made by a template that uses secrets: rendered with real values on reveal."""

    __slots__ = ("_template", "_variables")

    def __init__(self, template: str, variables: dict[str, Any]) -> None:
        super().__init__("", source="template")
        self._template = template
        self._variables = variables

    def reveal(self) -> str:
        """Render the template with every secret it uses revealed (once)."""
        if not self._value:
            names = _names(self._template)
            context = {k: reveal_all(v) for k, v in self._variables.items() if k in names}
            compiled, whole = _compiled(self._template)
            try:
                value = evaluate(compiled, whole, context)
            except Exception as error:  # its message may quote a revealed value
                raise InputError(f"template error in '{_short(self._template)}' with a secret: "
                                 f"{type(error).__name__}", None,
                                 "a template that renders") from None
            self._value = str(value)
        return self._value

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)


def template_names(value: Any) -> frozenset[str]:
    """Every variable name the template strings in `value` (nested too) use."""
    if isinstance(value, dict):
        return frozenset().union(*(template_names(v) for v in value.values()))
    if isinstance(value, list):
        return frozenset().union(*(template_names(v) for v in value))
    return _names(value) if is_template(value) else frozenset()


def _plain_part(name: str, value: Any) -> tuple[str, type, Any]:
    """A memo key's part for a plain value: its type too (True is not 1), and a float by its
    repr (-0.0 is not 0.0)."""
    return (name, type(value), repr(value) if type(value) is float else value)


class _Same:
    """A key part equal only to itself's object (never compares or reveals a secret)."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.value is self.value

    def __hash__(self) -> int:
        return id(self.value)


class Renderer:
    """Renders strings against one host's variables, resolving templated variables once."""

    def __init__(self, variables: dict[str, Any]) -> None:
        self.variables = variables
        self.resolved: dict[str, Any] = {}
        self.active: list[str] = []

    def plain_key(self, names: frozenset[str]) -> tuple[tuple[str, type, Any], ...] | None:
        """The values of `names` (resolved) as a hashable key, or None when one is not a
        plain string, number, boolean or secret (a secret stands for itself: the same object,
        which the key keeps alive) or does not resolve; a list or a map is not plain."""
        key: list[tuple[str, type, Any]] = []
        for name in sorted(names):
            if name not in self.variables:
                continue
            try:
                value = self.var(name, None)
            except InputError:
                self.active.clear()
                return None
            if isinstance(value, TemplatedSecret):   # made per host: a key would never match
                return None
            if isinstance(value, Secret):
                key.append((name, Secret, _Same(value)))
            elif type(value) in _PLAIN:
                key.append(_plain_part(name, value))
            else:
                return None
        return tuple(key)

    def render(self, value: Any, location: Location | None) -> Any:
        """`value` with every template string rendered (located containers keep places)."""
        return self.value(value, location)

    def var(self, name: str, location: Location | None) -> Any:
        if name in self.resolved:
            return self.resolved[name]
        if name in self.active:
            cycle = " -> ".join([*self.active[self.active.index(name):], name])
            raise InputError(f"variables refer to each other in a circle: {cycle}", location,
                             "variables that end in plain values")
        if len(self.active) >= _MAX_DEPTH:
            raise InputError(f"variable '{name}' nests templates too deeply", location,
                             f"at most {_MAX_DEPTH} levels")
        self.active.append(name)
        try:
            value = self.value(self.variables[name], location, via=name)
        finally:
            self.active.pop()
        self.resolved[name] = value
        return value

    def value(self, value: Any, location: Location | None, via: str | None = None) -> Any:
        if isinstance(value, LocatedDict):
            located = LocatedDict((k, self.value(v, value.value_location(k), via))
                                  for k, v in value.items())
            located.location, located.key_locations = value.location, value.key_locations
            located.value_locations = value.value_locations
            return located
        if isinstance(value, LocatedList):
            items = LocatedList(self.value(v, value.item_location(i), via)
                                for i, v in enumerate(value))
            items.location, items.item_locations = value.location, value.item_locations
            return items
        if isinstance(value, dict):
            return {k: self.value(v, location, via) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, location, via) for v in value]
        if not is_template(value):
            return value
        return self.string(value, location, via)

    def string(self, text: str, location: Location | None, via: str | None = None) -> Any:
        check_syntax(text, location)
        names = _names(text)
        context: dict[str, Any] = {}
        for name in sorted(names):
            if name in self.variables:
                context[name] = self.var(name, location)
        key = None
        if all(type(v) in _PLAIN for v in context.values()):   # no secret, nothing mutable
            key = (text, tuple(_plain_part(k, v) for k, v in context.items()))
            if key in _RENDERED:
                return _RENDERED[key]
        used_by = f" (used by variable '{via}')" if via else ""
        compiled, whole = _compiled(text)
        try:
            result = evaluate(compiled, whole, context)
            if isinstance(result, Undefined):   # a whole expression evaluates, not raises
                result._fail_with_undefined_error()
        except UndefinedError as error:
            missing = sorted(names - context.keys() - set(ENV.globals))
            what = (f"undefined variable '{missing[0]}'" if missing
                    else f"undefined value ({error.message})")
            raise InputError(f"{what} in '{_short(text)}'{used_by}", location,
                             "a variable from the inventory, the playbook's vars or -e") from None
        except TemplateError as error:
            raise InputError(f"template error in '{_short(text)}'{used_by}: {error.message}",
                             location, "a template that renders") from None
        except Exception as error:  # 1/0, 1 + "a" ...: values are not echoed (secrets)
            raise InputError(f"template error in '{_short(text)}'{used_by}: "
                             f"{type(error).__name__}", location,
                             "a template that renders") from None
        if isinstance(result, Secret):
            return result
        if any(holds_secret(v) for v in context.values()):
            return TemplatedSecret(text, context)
        if key is not None and type(result) in _PLAIN:
            if len(_RENDERED) >= _RENDERED_MAX:
                _RENDERED.clear()
            _RENDERED[key] = result
        return result


def render_value(value: Any, variables: dict[str, Any], location: Location | None) -> Any:
    """Render every template string in `value` (nested too) against `variables`."""
    return Renderer(variables).value(value, location)


def resolve_variables(variables: dict[str, Any]) -> dict[str, Any]:
    """`variables` with templated values rendered where they can be; others left as they are."""
    resolver = Renderer(variables)
    result = dict(variables)
    for name in variables:
        try:
            result[name] = resolver.var(name, None)
        except InputError:
            resolver.active.clear()
    return result
