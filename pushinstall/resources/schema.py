"""Declarative argument schemas for resource types, and their validation.

Each resource module declares `ARGS: tuple[argspec.Arg, ...]` (and optionally `RULES`). Playbook
loading calls `validate_args` on the step's located mapping, so every error points at the key
or value at fault: `path:line:col: what is wrong (what was expected)`. A value that is a Jinja
template (`{{ ... }}`) is accepted for any type at load time; `render_step` checks the rendered
value again per host.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pushinstall.argspec import (
    ANY,
    BOOLEAN,
    CODES,
    EXPECTED,
    OBJECT,
    PATH,
    STRING,
    STRING_LIST,
    Arg,
    Rule,
    expected,
    json_type_ok,
    out_of_range,
)
from pushinstall.errors import InputError, Location
from pushinstall.secret import Secret
from pushinstall.source import LocatedDict, LocatedList, boolean_value, did_you_mean, kind_of

CODE_RESULTS = ("ok", "reboot", "failed")


def is_template(value: Any) -> bool:
    """True for a string holding a Jinja expression or statement."""
    # one scan for the common string with no brace at all (a rendered list of a million such
    # strings is walked again when it is a variable of another template)
    return isinstance(value, str) and "{" in value and ("{{" in value or "{%" in value)


# YAML's leniency over the JSON types of `argspec.json_type_ok`: a number is text to a
# `string` (`version: 9.60`), `yes` is a boolean, a list of strings may hold numbers and
# secrets; `codes` keys are checked one by one in `_check_codes`.
_YAML_CHECKS: Mapping[str, Callable[[Any], bool]] = {
    STRING: lambda v: isinstance(v, (str, int, float)) and not isinstance(v, bool),
    BOOLEAN: lambda v: boolean_value(v) is not None,
    STRING_LIST: lambda v: isinstance(v, list) and all(
        isinstance(i, (str, int, float, Secret)) and not isinstance(i, bool) for i in v),
    OBJECT: lambda v: isinstance(v, dict),
    ANY: lambda v: True,
    CODES: lambda v: isinstance(v, dict),
}


def _type_ok(arg: Arg, value: Any) -> bool:
    check = _YAML_CHECKS.get(arg.type)
    return check(value) if check is not None else json_type_ok(arg.type, value)


def at_least_one_of(*names: str) -> Rule:
    """A rule: one of `names` must be set."""
    def rule(args: Mapping[str, Any], location: Location) -> None:
        if not any(args.get(name) not in (None, "") for name in names):
            raise InputError(
                "missing argument: one of " + ", ".join(f"'{n}'" for n in names),
                location, "at least one of them to be set",
            )
    rule.__doc__ = "At least one of " + ", ".join(f"`{n}`" for n in names) + " is required."
    return rule


def exactly_one_of(*names: str) -> Rule:
    """A rule: exactly one of `names` must be set."""
    def rule(args: Mapping[str, Any], location: Location) -> None:
        present = [name for name in names if name in args]
        if len(present) != 1:
            found = ", ".join(present) if present else "none"
            raise InputError(f"expected exactly one of {', '.join(names)}; found {found}",
                             location, "one condition kind")
    rule.__doc__ = "Exactly one of " + ", ".join(f"`{n}`" for n in names) + "."
    return rule


def _where(container: Any, key: Any, fallback: Location | None) -> Location | None:
    if isinstance(container, LocatedDict):
        return container.value_location(key)
    return fallback


def _key_where(container: Any, key: Any, fallback: Location | None) -> Location | None:
    if isinstance(container, LocatedDict):
        return container.key_location(key)
    return fallback


def _item_where(container: Any, index: int, fallback: Location | None) -> Location | None:
    if isinstance(container, LocatedList):
        return container.item_location(index)
    return fallback


def _check_value(arg: Arg, value: Any, location: Location | None, what: str) -> None:
    if value is None or (arg.type == PATH and arg.required and value == ""):
        if arg.required:
            raise InputError(f"'{arg.name}' of {what} is empty", location, expected(arg))
        return
    if is_template(value) or isinstance(value, Secret):
        return
    if not _type_ok(arg, value):
        raise InputError(f"'{arg.name}' of {what} is {kind_of(value)}", location,
                         EXPECTED[arg.type])
    if out_of_range(arg, value):
        raise InputError(f"'{arg.name}' of {what} is {value}", location, expected(arg))
    if arg.type == CODES:
        _check_codes(arg, value, location, what)
    if arg.type == STRING_LIST and arg.choices:
        for index, item in enumerate(value):
            if item not in arg.choices and not is_template(item):
                raise InputError(
                    f"'{item}' in '{arg.name}' of {what} is not known"
                    f"{did_you_mean(str(item), map(str, arg.choices))}",
                    _item_where(value, index, location),
                    "each one of: " + ", ".join(str(c) for c in arg.choices),
                )
    elif arg.choices and value not in arg.choices:
        raise InputError(
            f"'{arg.name}' of {what} is '{value}'{did_you_mean(str(value), map(str, arg.choices))}",
            location, "one of: " + ", ".join(str(c) for c in arg.choices),
        )
    if arg.pattern and isinstance(value, str) and not re.fullmatch(arg.pattern, value):
        raise InputError(f"'{arg.name}' of {what} is '{value}'", location,
                         arg.pattern_doc or f"a value matching {arg.pattern}")
    if arg.type == OBJECT and arg.fields:
        check_args(arg.fields, value, f"'{arg.name}' of {what}", location, arg.rules)


def _check_codes(arg: Arg, value: dict[Any, Any], location: Location | None, what: str) -> None:
    for code, result in value.items():
        key_location = _key_where(value, code, location)
        if isinstance(code, bool) or not isinstance(code, int):
            raise InputError(f"exit code '{code}' in '{arg.name}' of {what} is not a number",
                             key_location, "a whole number such as 3010")
        if result not in CODE_RESULTS and not is_template(result):
            raise InputError(
                f"exit code {code} maps to '{result}' in '{arg.name}' of {what}",
                _where(value, code, location), "one of: " + ", ".join(CODE_RESULTS),
            )


def check_args(
    schema: Iterable[Arg],
    args: Any,
    what: str,
    location: Location | None = None,
    rules: Iterable[Rule] = (),
) -> None:
    """Validate `args` (ideally a `LocatedDict`) against `schema`; raise `InputError`."""
    schema = tuple(schema)
    location = getattr(args, "location", location)
    if not isinstance(args, dict):
        raise InputError(f"the arguments of {what} are {kind_of(args)}", location,
                         "a mapping of arguments")
    names = [arg.name for arg in schema]
    for key in args:
        if key not in names:
            raise InputError(
                f"unknown argument '{key}' for {what}{did_you_mean(str(key), names)}",
                _key_where(args, key, location), "one of: " + ", ".join(names),
            )
    for arg in schema:
        if arg.name not in args:
            if arg.required:
                raise InputError(f"missing required argument '{arg.name}' for {what}",
                                 location, expected(arg))
            continue
        _check_value(arg, args[arg.name], _where(args, arg.name, location), what)
    if location is not None:
        for rule in rules:
            rule(args, location)


def with_defaults(schema: Iterable[Arg], args: Mapping[str, Any]) -> dict[str, Any]:
    """`args` with every absent optional argument set to its default (nested maps too), and
    booleans written as words (`'yes'`) made booleans."""
    result = dict(args)
    for arg in schema:
        if arg.name not in result and arg.default is not None:
            result[arg.name] = arg.default
        if arg.type == BOOLEAN and boolean_value(result.get(arg.name)) is not None:
            result[arg.name] = boolean_value(result[arg.name])
        if arg.type == OBJECT and arg.fields and isinstance(result.get(arg.name), Mapping):
            result[arg.name] = with_defaults(arg.fields, result[arg.name])
    return result


def secret_fields(schema: Iterable[Arg], args: dict[str, Any]) -> dict[str, Any]:
    """`args` with every argument declared `secret` (nested too) wrapped in `Secret`."""
    result = dict(args)
    for arg in schema:
        value = result.get(arg.name)
        if arg.secret and value is not None and not isinstance(value, Secret):
            result[arg.name] = Secret(str(value))
        elif arg.type == OBJECT and arg.fields and isinstance(value, dict):
            result[arg.name] = secret_fields(arg.fields, value)
    return result


def known_table_or_mapping(name: str, tables: Iterable[str]) -> Rule:
    """A rule: argument `name` is one of `tables` or a mapping of exit codes to text."""
    tables = tuple(tables)

    def rule(args: Mapping[str, Any], location: Location) -> None:
        value = args.get(name)
        where = _where(args, name, location)
        if value in (None, "") or is_template(value):
            return
        if isinstance(value, str):
            if value not in tables:
                raise InputError(f"'{name}' is '{value}'{did_you_mean(value, tables)}", where,
                                 "one of: " + ", ".join(tables) + ", or a mapping code -> text")
            return
        if not isinstance(value, dict):
            raise InputError(f"'{name}' is {kind_of(value)}", where,
                             "a table name or a mapping of exit codes to text")
        for code in value:
            if isinstance(code, bool) or not isinstance(code, int):
                raise InputError(f"exit code '{code}' in '{name}' is not a number",
                                 _key_where(value, code, where), "a whole number such as 1603")
    rule.__doc__ = (f"`{name}` is one of " + ", ".join(f"`{t}`" for t in tables)
                    + " or a mapping of exit codes to text.")
    return rule


def _shown_default(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_shown_default(v)}" for k, v in value.items()) + "}"
    return str(value)


def markdown_table(schema: Iterable[Arg]) -> str:
    """The arguments of a schema as a Markdown table (docs/playbook.md is generated from it)."""
    lines = ["| argument | type | required | default | choices | description |",
             "|---|---|---|---|---|---|"]
    for arg in schema:
        default = "" if arg.default in (None, "", [], {}) else f"`{_shown_default(arg.default)}`"
        choices = ", ".join(f"`{c}`" for c in arg.choices)
        doc = arg.doc or ""
        if arg.fields:
            doc += " Keys: " + ", ".join(
                f"`{f.name}`" + (" (required)" if f.required else "")
                + (" (secret)" if f.secret else "") for f in arg.fields) + "."
        if arg.pattern_doc:
            doc += f" Must be {arg.pattern_doc}."
        if arg.minimum is not None:
            doc += f" At least {arg.minimum}."
        if arg.maximum is not None:
            doc += f" At most {arg.maximum}."
        if arg.secret:
            doc += " Secret: never printed."
        doc = doc.strip().replace("|", "\\|")
        lines.append(f"| `{arg.name}` | {arg.type} | {'yes' if arg.required else ''} "
                     f"| {default} | {choices} | {doc} |")
    return "\n".join(lines)
