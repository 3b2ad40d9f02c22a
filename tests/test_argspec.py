"""One argument-schema mechanism: op requests and resource arguments declare `argspec.Arg`."""

from __future__ import annotations

import pytest

from pushinstall import argspec
from pushinstall.argspec import Arg
from pushinstall.remote import ops, sealing
from pushinstall.resources import RESOURCE_TYPES


def _all_args(schema: tuple[Arg, ...]) -> list[Arg]:
    return [item for arg in schema for item in (arg, *_all_args(arg.fields))]


def test_ops_and_resources_declare_the_same_arg_with_one_vocabulary() -> None:
    declared = [arg for schema in (*ops.OP_SCHEMAS.values(), *ops.FACT_SCHEMAS.values())
                for arg in _all_args(schema)]
    declared += [arg for module in RESOURCE_TYPES.values() for arg in _all_args(module.ARGS)]
    assert declared and all(type(arg) is Arg for arg in declared)
    assert {arg.type for arg in declared} <= set(argspec.TYPES)


def test_an_unknown_type_word_is_refused_where_it_is_declared() -> None:
    with pytest.raises(ValueError, match="unknown type 'str'"):
        Arg("name", "str")


@pytest.mark.parametrize(("type_word", "good", "bad"), [
    (argspec.STRING, "x", 3), (argspec.INTEGER, 3, True), (argspec.BOOLEAN, False, "yes"),
    (argspec.LIST, [1, "a"], "a"), (argspec.STRING_LIST, ["a"], ["a", 1]),
    (argspec.OBJECT, {"a": 1}, {1: "a"}), (argspec.SHA256, "ab" * 32, "ab" * 31),
    (argspec.BASE64, "QUJD", "**"), (argspec.ANY, 0, None),
    (argspec.CREDENTIAL, {"username": "u", "password": "p"}, {"username": "u"}),
    (argspec.CODES, {3010: "reboot"}, {"3010": "reboot"}),
])
def test_json_types_are_judged_in_one_place(type_word: str, good: object, bad: object) -> None:
    assert argspec.json_type_ok(type_word, good)
    assert not argspec.json_type_ok(type_word, bad)


def test_the_sealed_fields_are_the_arguments_the_op_schemas_mark_secret() -> None:
    marked = {op for op, schema in ops.OP_SCHEMAS.items() if any(a.secret for a in schema)}
    assert set(sealing.SECRET_FIELDS) == marked == {"write_secret", "download"}
    assert sealing.SECRET_FIELDS["download"] == ("credential.password",)


def test_bounds_read_the_same_in_words() -> None:
    assert argspec.expected(Arg("n", argspec.INTEGER, minimum=1)) == "a whole number of at least 1"
    assert argspec.expected(Arg("p", argspec.INTEGER, minimum=1, maximum=9)) == (
        "a whole number from 1 to 9")
    assert argspec.out_of_range(Arg("p", argspec.INTEGER, maximum=9), 10)
    assert not argspec.out_of_range(Arg("p", argspec.INTEGER, maximum=9), 9)
