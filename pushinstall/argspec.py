"""One argument-schema mechanism: the `Arg` that op requests (`remote/ops.py`) and resource
arguments (`resources/schema.py`) both declare, with one vocabulary of type words.

A schema is a tuple of `Arg`s. The two walkers differ only in what they read and how they
speak: `remote.ops.validate_request` checks decoded JSON and raises `ValueError` without ever
quoting a value; `resources.schema.check_args` checks located YAML (where a number is text to a
`string`, `yes` is a boolean and a Jinja template passes until rendered) and raises a located
`InputError`. The JSON type of a value is judged here, once, by `json_type_ok`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pushinstall.errors import Location

# The type words. `string` and `path` are strings (a resource's `string` also takes a YAML
# number: `version: 9.60`); `list` is any list, `string_list` a list of strings; `object` a
# mapping with string keys; `codes` a mapping of exit codes to results (resources only);
# `sha256` 64 hex digits, `base64` and `credential` (`{"username", "password"}`) ops only.
STRING, PATH, INTEGER, BOOLEAN = "string", "path", "integer", "boolean"
LIST, STRING_LIST, OBJECT, ANY = "list", "string_list", "object", "any"
SHA256, BASE64, CREDENTIAL, CODES = "sha256", "base64", "credential", "codes"

TYPES: tuple[str, ...] = (STRING, PATH, INTEGER, BOOLEAN, LIST, STRING_LIST, OBJECT, ANY,
                          SHA256, BASE64, CREDENTIAL, CODES)

EXPECTED: Mapping[str, str] = {
    STRING: "a string", PATH: "a string", INTEGER: "a whole number", BOOLEAN: "true or false",
    LIST: "a list", STRING_LIST: "a list of strings", OBJECT: "a mapping", ANY: "any value",
    SHA256: "64 hex digits", BASE64: "base64", CREDENTIAL: "a username and a password",
    CODES: "a mapping of exit codes to ok, reboot or failed",
}

# A check a whole argument mapping must pass (one of, exactly one of ...), raising InputError.
Rule = Callable[[Mapping[str, Any], Location], None]


@dataclass(frozen=True)
class Arg:
    """One argument: its name, type word (`TYPES`) and the values it may take.

    `minimum`/`maximum` bound a number; `choices` the values (each item, for a list);
    `pattern` is a regex a string must match (`pattern_doc` says it for people); `fields`
    describe a nested `object`; `secret` values become `Secret` after rendering (resources) and
    are sealed or never quoted (ops); `rules` check a nested object as a whole.
    """

    name: str
    type: str = STRING
    required: bool = False
    default: Any = None
    choices: tuple[Any, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    secret: bool = False
    doc: str = ""
    fields: tuple[Arg, ...] = ()
    pattern: str = ""
    pattern_doc: str = ""
    rules: tuple[Rule, ...] = ()

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"argument {self.name!r}: unknown type {self.type!r}")


def by_name(schema: Iterable[Arg]) -> dict[str, Arg]:
    """A schema's arguments by name."""
    return {arg.name: arg for arg in schema}


def expected(arg: Arg) -> str:
    """What `arg` takes, in words, for an error's `(expected)`."""
    text = EXPECTED[arg.type]
    if arg.minimum is not None and arg.maximum is not None:
        return f"{text} from {arg.minimum} to {arg.maximum}"
    if arg.minimum is not None:
        return f"{text} of at least {arg.minimum}"
    if arg.maximum is not None:
        return f"{text} of at most {arg.maximum}"
    return text


_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def is_base64(text: str) -> bool:
    """True when `text` is strict base64."""
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_JSON_CHECKS: Mapping[str, Callable[[Any], bool]] = {
    STRING: lambda v: isinstance(v, str),
    PATH: lambda v: isinstance(v, str),
    INTEGER: _is_integer,
    BOOLEAN: lambda v: isinstance(v, bool),
    LIST: lambda v: isinstance(v, list),
    STRING_LIST: lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v),
    OBJECT: lambda v: isinstance(v, dict) and all(isinstance(k, str) for k in v),
    ANY: lambda v: v is not None,
    SHA256: lambda v: isinstance(v, str) and _HEX64.fullmatch(v) is not None,
    BASE64: lambda v: isinstance(v, str) and is_base64(v),
    CREDENTIAL: lambda v: (isinstance(v, dict) and set(v) == {"username", "password"}
                           and all(isinstance(i, str) for i in v.values())),
    CODES: lambda v: isinstance(v, dict) and all(_is_integer(k) for k in v),
}


def json_type_ok(type_word: str, value: Any) -> bool:
    """True when decoded JSON `value` is of type `type_word`."""
    return _JSON_CHECKS[type_word](value)


def out_of_range(arg: Arg, value: Any) -> bool:
    """True when a number `value` is below `arg.minimum` or above `arg.maximum`."""
    return ((arg.minimum is not None and value < arg.minimum)
            or (arg.maximum is not None and value > arg.maximum))
