"""Load YAML files keeping the line and column of every key, value and item.

PyYAML silently keeps the last of two equal keys and forgets positions once it builds Python
objects. `load_yaml` refuses duplicate keys and returns `LocatedDict` / `LocatedList`, which
remember where each of their keys, values and items stood, so a later check can say
`path:line:col: what is wrong (what was expected)`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from pushinstall.errors import InputError, Location


class LocatedDict(dict):  # type: ignore[type-arg]
    """A YAML mapping: a dict that knows where it, its keys and its values stood."""

    location: Location
    key_locations: dict[Any, Location]
    value_locations: dict[Any, Location]

    def key_location(self, key: Any) -> Location:
        """Where `key` stood (the mapping's own place for a key it does not have)."""
        return self.key_locations.get(key, self.location)

    def value_location(self, key: Any) -> Location:
        """Where the value of `key` stood (the mapping's own place for a key it does not have)."""
        return self.value_locations.get(key, self.location)


class LocatedList(list):  # type: ignore[type-arg]
    """A YAML sequence: a list that knows where it and each item stood."""

    location: Location
    item_locations: list[Location]

    def item_location(self, index: int) -> Location:
        """Where item `index` stood."""
        if 0 <= index < len(self.item_locations):
            return self.item_locations[index]
        return self.location


def _location(path: str, node: yaml.Node) -> Location:
    mark = node.start_mark
    return Location(path, mark.line + 1, mark.column + 1)


class _Loader(yaml.SafeLoader):
    """SafeLoader that builds located containers and refuses duplicate keys."""

    source_path = "<string>"

    def construct_yaml_map(self, node: yaml.MappingNode) -> Any:  # type: ignore[override]
        data = LocatedDict()
        data.location = _location(self.source_path, node)
        data.key_locations = {}
        data.value_locations = {}
        yield data
        self.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise InputError(
                    "a mapping key must be a plain value",
                    _location(self.source_path, key_node),
                    "a string",
                ) from None
            if key in data.key_locations:
                first = data.key_locations[key]
                raise InputError(
                    f"duplicate key '{key}'",
                    _location(self.source_path, key_node),
                    f"each key once; first seen at line {first.line}",
                )
            data[key] = self.construct_object(value_node, deep=True)
            data.key_locations[key] = _location(self.source_path, key_node)
            data.value_locations[key] = _location(self.source_path, value_node)

    def construct_yaml_seq(self, node: yaml.SequenceNode) -> Any:  # type: ignore[override]
        data = LocatedList()
        data.location = _location(self.source_path, node)
        data.item_locations = [_location(self.source_path, item) for item in node.value]
        yield data
        data.extend(self.construct_object(item, deep=True) for item in node.value)


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_yaml_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _Loader.construct_yaml_seq)

VAULT_ALTERNATIVES = "{file: PATH}, {env: NAME} or {prompt: true} instead"


def _refuse_vault(loader: _Loader, node: yaml.Node) -> Any:
    """Ansible Vault values cannot be decrypted here: say so, and what to use instead."""
    raise InputError("an Ansible Vault value (!vault) cannot be read by pushinstall",
                     _location(loader.source_path, node), VAULT_ALTERNATIVES)


_Loader.add_constructor("!vault", _refuse_vault)


def load_yaml_text(text: str, path: str = "<string>") -> Any:
    """Parse YAML text into located containers; any YAML error becomes an `InputError`."""
    loader = _Loader(text)
    loader.source_path = path
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        location = Location(path, mark.line + 1, mark.column + 1) if mark else Location(path, 1, 1)
        problem = error.problem or error.context or "invalid YAML"
        raise InputError(f"YAML syntax error: {problem}", location, "valid YAML") from None
    except yaml.YAMLError as error:
        raise InputError(f"YAML error: {error}", Location(path, 1, 1), "valid YAML") from None
    finally:
        loader.dispose()


def load_yaml(path: str | Path) -> Any:
    """Read and parse a YAML file; a missing or unreadable file is an `InputError`."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError("file not found", Location(name, 1, 1), "an existing file") from None
    except IsADirectoryError:
        raise InputError("is a directory", Location(name, 1, 1), "a YAML file") from None
    except UnicodeDecodeError as error:
        raise InputError(
            f"not UTF-8 text (byte {error.start})", Location(name, 1, 1), "a UTF-8 YAML file"
        ) from None
    except OSError as error:
        raise InputError(
            f"cannot read file: {error.strerror}", Location(name, 1, 1), "a readable file"
        ) from None
    return load_yaml_text(text, name)


def kind_of(value: Any) -> str:
    """What a YAML value is, in words: "a mapping", "a list", "a string", "nothing" ..."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`"; did you mean 'x'?"` for the closest of `choices`, or `""`. A short name of a host's
    FQDN counts as close (`web01` -> `web01.ams.corp.example`)."""
    choices = list(choices)
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    if not close:
        close = sorted(c for c in choices if c.split(".", 1)[0] == str(word))[:3]
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def check_keys(
    mapping: LocatedDict, allowed: Iterable[str], what: str, required: Iterable[str] = ()
) -> None:
    """Refuse keys of `mapping` not in `allowed` (with a did-you-mean) and missing `required`."""
    allowed = list(allowed)
    for key in mapping:
        if key not in allowed:
            raise InputError(
                f"unknown key '{key}' in {what}{did_you_mean(key, allowed)}",
                mapping.key_location(key),
                "one of: " + ", ".join(allowed),
            )
    for key in required:
        if key not in mapping:
            raise InputError(
                f"missing required key '{key}' in {what}", mapping.location, f"'{key}' to be set"
            )
