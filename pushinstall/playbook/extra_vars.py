"""`-e` / `--extra-vars`: `key=value` (YAML scalar typing), `@file.yml`, or a JSON mapping.

Several pairs may share one `-e` (`-e "site=ams cs_endpoint=10.0.0.9"`); a value runs to the
next ` name=`, so `share=\\\\srv\\asr` and `dir=C:\\Program Files\\x` arrive intact; quotes
around a whole value are removed.

Extra vars have the highest precedence. A var whose name says it is a secret
(`password`, `passphrase`, ...) becomes a `Secret`, so it is masked like an inventory secret.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from pushinstall.errors import InputError, Location
from pushinstall.inventory.secrets import is_secret_name
from pushinstall.secret import Secret
from pushinstall.source import LocatedDict, kind_of, load_yaml, load_yaml_text

COMMAND_LINE = Location("<command line>", 1, 1)
VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NEXT_PAIR = re.compile(r"\s+(?=[A-Za-z_][A-Za-z0-9_]*=)")
_NAME_RULE = "letters, digits and _, not starting with a digit"


def _scalar(text: str) -> Any:
    """`text` typed as a YAML scalar (`5` -> 5, `true` -> True), else the text itself."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if value is None or isinstance(value, (dict, list)) or not isinstance(
            value, (str, int, float, bool)):
        return text
    return value


def _check_names(data: LocatedDict | dict[str, Any], shown: str,
                 location: Location) -> dict[str, Any]:
    for key in data:
        if not isinstance(key, str) or not VAR_NAME.match(key):
            where = data.key_location(key) if isinstance(data, LocatedDict) else location
            raise InputError(f"-e {shown}: '{key}' is not a variable name", where, _NAME_RULE)
    return {k: Secret(str(v), source="-e") if is_secret_name(k) and isinstance(v, (str, int))
            else v for k, v in data.items()}


def _from_file(value: str) -> dict[str, Any]:
    name = value[1:]
    if not name:
        raise InputError("-e '@' names no file", COMMAND_LINE, "-e @vars.yml")
    data = load_yaml(name)
    if data is None:
        return {}
    if not isinstance(data, LocatedDict):
        raise InputError(f"extra vars file is {kind_of(data)}",
                         getattr(data, "location", Location(name, 1, 1)),
                         "a mapping of variable names to values")
    return _check_names(data, f"'{value}'", data.location)


def _from_mapping_text(value: str) -> dict[str, Any]:
    try:
        data = load_yaml_text(value, COMMAND_LINE.path)
    except InputError as error:
        raise InputError(f"-e '{value}': {error.message}", COMMAND_LINE,
                         'a JSON mapping such as {"key": "value"}') from None
    if not isinstance(data, LocatedDict):
        raise InputError(f"-e '{value}' is {kind_of(data)}", COMMAND_LINE,
                         'a JSON mapping such as {"key": "value"}')
    return _check_names(data, f"'{value}'", COMMAND_LINE)


def _from_pairs(value: str) -> dict[str, Any]:
    # Not shlex: it would eat the backslashes of every Windows path (`share=\\srv\asr`).
    result: dict[str, Any] = {}
    for word in _NEXT_PAIR.split(value.strip()):
        key, sep, text = word.partition("=")
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
            text = text[1:-1]
        if not sep:
            raise InputError(f"-e '{value}': '{word}' has no '='", COMMAND_LINE,
                             "KEY=VALUE, @FILE.yml or a JSON mapping")
        if not VAR_NAME.match(key):
            raise InputError(f"-e '{value}': '{key}' is not a variable name", COMMAND_LINE,
                             _NAME_RULE)
        result[key] = Secret(text, source="-e") if is_secret_name(key) else _scalar(text)
    return result


def parse_extra_vars(values: list[str]) -> dict[str, Any]:
    """Merge every `-e` value, later ones winning. Errors are `InputError`s at
    `<command line>:1:1` (or in the `@file`)."""
    merged: dict[str, Any] = {}
    for value in values:
        text = value.strip()
        if not text:
            raise InputError("-e '' is empty", COMMAND_LINE, "KEY=VALUE, @FILE.yml or a mapping")
        if text.startswith("@"):
            merged.update(_from_file(text))
        elif text.startswith("{"):
            merged.update(_from_mapping_text(text))
        else:
            merged.update(_from_pairs(text))
    return merged
