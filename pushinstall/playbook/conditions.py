"""`when` conditions: a Jinja expression evaluated on a host's variables and gathered facts.

A step's `when` sees every variable of the host (inventory, playbook, extra vars) and `facts`:
`facts.os` (the `os` fact of the gather: hostname, version, build, last_boot_time, ...) and
`facts.steps[<step name>]` (what that step's probes found, by probe id). An undefined name is
an error, never a silent false.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from jinja2.exceptions import TemplateError

from pushinstall.errors import InputError
from pushinstall.playbook.sandbox import Sandbox, start_budget
from pushinstall.secret import Secret

_ENV = Sandbox()   # bounded like every template (a `when` comes from the same files)


def _unwrap(value: Any) -> Any:
    """Secrets compare by their masked text, so a `when` can never test a secret's value."""
    if isinstance(value, Secret):
        return str(value)
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


@functools.lru_cache(maxsize=1024)
def _compiled(text: str) -> Callable[..., Any]:
    """The expression compiled once (Jinja's compile is ~3 ms; a fleet's hosts share whens)."""
    return _ENV.compile_expression(text, undefined_to_none=False)


def evaluate_when(expression: str, variables: dict[str, Any], facts: dict[str, Any]) -> bool:
    """True when `expression` holds for this host. A bad expression raises `InputError`.

    `expression` may be a bare expression (`os_family == 'Windows'`) or wrapped in `{{ }}`.
    """
    text = expression.strip()
    if text.startswith("{{") and text.endswith("}}"):
        text = text[2:-2].strip()
    context = {k: _unwrap(v) for k, v in variables.items()}
    context["facts"] = facts
    start_budget()
    try:
        return bool(_compiled(text)(**context))
    except TemplateError as error:
        raise InputError(f"when '{expression}': {error}") from None
