"""The `script` op on a lab host: a deliberately tiny reading of PowerShell.

The lab proves orchestration, not PowerShell semantics (agent.ps1 runs the real thing). A lab
script is read line by line; each line is one of:

- a comment (`# ...`) or blank: skipped;
- `'text'` / `"text"` or `Write-Output 'text'`: the text is output (no `$` expansion);
- `$Parameters['Name']`, `$Parameters["Name"]`, `$Parameters.Name` (alone or after
  `Write-Output`): the parameter's value is output, a list item by item, so parameters are
  shown to arrive as data;
- `Write-Error 'text'`: an error, the script goes on;
- `throw 'text'`: an error, the script stops.

Any other line is an error naming it, and the script stops: `success` is false.
"""

from __future__ import annotations

import re
from typing import Any

_LITERAL = re.compile(r"""^'((?:[^']|'')*)'$|^"([^"]*)"$""", re.DOTALL)
_PARAMETER = re.compile(r"""^\$Parameters(?:\[\s*(?:'([^']*)'|"([^"]*)")\s*\]|\.(\w+))$""",
                        re.IGNORECASE)


def _value(expression: str, parameters: dict[str, Any]) -> list[str] | None:
    literal = _LITERAL.match(expression)
    if literal:
        text = literal.group(1)
        return [text.replace("''", "'") if text is not None else literal.group(2)]
    found = _PARAMETER.match(expression)
    if found:
        name = next(g for g in found.groups() if g is not None)
        # PowerShell hashtables are case-insensitive
        match = next((v for k, v in parameters.items() if k.lower() == name.lower()), None)
        if match is None:
            return []
        return [str(v) for v in match] if isinstance(match, list) else [_text(match)]
    return None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def run_script(source: str, parameters: dict[str, Any] | None) -> dict[str, Any]:
    """`{"output", "errors", "success"}` for `source` as described in the module docstring."""
    params = parameters or {}
    output: list[str] = []
    errors: list[str] = []
    for raw in source.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        verb, _, rest = line.partition(" ")
        verb = verb.lower()
        expression = rest.strip() if verb in ("write-output", "write-error", "throw") else line
        values = _value(expression, params)
        if values is None:
            errors.append(f"pushinstall lab: a lab host does not run this PowerShell: {line[:80]}")
            break
        if verb == "throw":
            errors.append(" ".join(values) or "ScriptHalted")
            break
        if verb == "write-error":
            errors.extend(values)
        else:
            output.extend(values)
    return {"output": output, "errors": errors, "success": not errors}
