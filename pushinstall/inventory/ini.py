"""Ansible INI inventories, read into the same located structure a YAML inventory gives.

    web01.ams.corp.example ansible_host=10.1.2.10      # ungrouped: a host of `all`
    [role_web]
    web[01:20].ams.corp.example
    [role_web:vars]
    asr_passphrase='{file: /run/secrets/asr-passphrase}'
    [site_ams:children]
    role_web

A host line is the host (ranges allowed) and `key=value` pairs, split as a shell would (quotes
keep spaces; a backslash is kept as it is, for `CORP\\svc-asr`). A value is text, except a whole
number, `true`/`false`, and a value that starts with `{` or `[`, which is read as YAML flow data
(so `{file: PATH}` secrets work): data, never code. `!vault` and `$ANSIBLE_VAULT` values are
refused with the alternatives. Every error points at its line and column.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from pushinstall.errors import InputError, Location
from pushinstall.source import VAULT_ALTERNATIVES, LocatedDict, load_yaml_text

_SECTION = re.compile(r"^\[([^\]:\s]+)(?::(vars|children|hosts))?\]\s*$")
_KINDS = ("hosts", "vars", "children")


def is_ini(path: str, text: str) -> bool:
    """An `.ini`/`.cfg` file, or one without a YAML suffix whose first line is a section or
    a host line rather than a YAML key."""
    suffix = Path(path).suffix.lower()
    if suffix in (".ini", ".cfg"):
        return True
    if suffix in (".yml", ".yaml", ".json"):
        return False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", ";", "---")):
            return bool(_SECTION.match(stripped)) or not re.match(r"^[^\s]+:(\s|$)", stripped)
    return False


def _mapping(location: Location) -> LocatedDict:
    mapping = LocatedDict()
    mapping.location = location
    mapping.key_locations, mapping.value_locations = {}, {}
    return mapping


def _put(mapping: LocatedDict, key: str, value: Any, key_loc: Location,
         value_loc: Location | None = None) -> None:
    mapping[key] = value
    mapping.key_locations[key] = key_loc
    mapping.value_locations[key] = value_loc or key_loc


def _child(mapping: LocatedDict, key: str, location: Location) -> LocatedDict:
    if not isinstance(mapping.get(key), LocatedDict):
        _put(mapping, key, _mapping(location), location)
    value: LocatedDict = mapping[key]
    return value


def _value(text: str, location: Location) -> Any:
    if text.startswith(("!vault", "$ANSIBLE_VAULT")):
        raise InputError("an Ansible Vault value cannot be read by pushinstall", location,
                         VAULT_ALTERNATIVES)
    if text.startswith(("{", "[")):
        try:
            return load_yaml_text(text, location.path)   # YAML flow data: data, not code
        except InputError as error:
            raise InputError(f"'{text}' is not a YAML flow value ({error.message})", location,
                             "quote a value with spaces: key='{file: PATH}'") from None
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def _pairs(words: list[str], line_text: str, number: int, path: str,
           start: int) -> list[tuple[str, Any, Location]]:
    out = []
    for word in words:
        column = line_text.find(word.split("=", 1)[0], start) + 1 or 1
        location = Location(path, number, column)
        if "=" not in word:
            raise InputError(f"'{word}' is not a variable", location, "key=value")
        key, value = word.split("=", 1)
        out.append((key, _value(value, Location(path, number, column + len(key) + 1)),
                    location))
    return out


def _split(line_text: str, location: Location) -> list[str]:
    try:
        lexer = shlex.shlex(line_text, posix=True)
        lexer.whitespace_split, lexer.commenters = True, "#"
        lexer.escape = ""   # CORP\svc-asr: a backslash is a Windows domain, not an escape
        return list(lexer)
    except ValueError as error:
        raise InputError(f"cannot split the line: {error}", location,
                         "balanced quotes") from None


def parse_ini(path: str, text: str) -> LocatedDict:
    """The INI inventory as `{group: {hosts: {...}, vars: {...}, children: {...}}}`."""
    top = _mapping(Location(path, 1, 1))
    group, kind = "ungrouped", "hosts"
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        indent = len(raw) - len(raw.lstrip())
        here = Location(path, number, indent + 1)
        if not stripped or stripped.startswith(("#", ";")):
            continue
        if stripped.startswith("["):
            match = _SECTION.match(stripped)
            if match is None:
                raise InputError(f"bad section header '{stripped}'", here,
                                 "[group], [group:vars] or [group:children]")
            group, kind = match.group(1), match.group(2) or "hosts"
            _child(top, group, here)
            continue
        section = _child(_child(top, group, here), kind, here)
        words = _split(raw, here)
        if kind == "children":
            if len(words) != 1:
                raise InputError(f"'{stripped}' is not one group name", here,
                                 f"one child group a line under [{group}:children]")
            _put(section, words[0], None, here)
        elif kind == "vars":
            for key, value, location in _pairs(words, raw, number, path, indent):
                _put(section, key, value, location)
        else:
            host_vars = _mapping(here)
            start = indent + len(words[0])
            for key, value, location in _pairs(words[1:], raw, number, path, start):
                _put(host_vars, key, value, location)
            _put(section, words[0], host_vars or None, here)
    if "ungrouped" in top and "hosts" not in top["ungrouped"]:
        del top["ungrouped"]
    return top


def load_inventory_file(path: str) -> Any:
    """An inventory file as located data: INI when `is_ini` says so, YAML otherwise."""
    from pushinstall.source import load_yaml

    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return load_yaml(path)    # raises the located error for the unreadable file
    return parse_ini(path, text) if is_ini(path, text) else load_yaml_text(text, path)
