"""Build an `Inventory` from Ansible-structured YAML or INI files, keeping each var's location."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from pushinstall.errors import InputError, Location
from pushinstall.inventory.connection import build_connection, settings_from_vars
from pushinstall.inventory.secrets import is_secret_name, secret_ref
from pushinstall.model import Group, Host, Inventory
from pushinstall.secret import Secret
from pushinstall.source import LocatedDict, check_keys, kind_of

GROUP_KEYS = ("hosts", "children", "vars")
_RANGE = re.compile(r"\[([^\[\]]*)\]")
MAX_RANGE = 100_000
PLAINTEXT_WARNING = "warning: plaintext password; use {env: NAME}, {file: PATH} or {prompt: true}"


def _range_count(body: str) -> int:
    """How many names one `[START:END(:STEP)]` gives; 1 for a malformed one (expand_range
    says what is wrong with it)."""
    parts = body.split(":")
    try:
        step = int(parts[2]) if len(parts) == 3 and parts[2] else 1
        if parts[0].isdigit() and parts[1].isdigit() and step >= 1:
            return max(0, (int(parts[1]) - int(parts[0])) // step + 1)
        if len(parts[0]) == 1 == len(parts[1]) and step >= 1:
            return max(0, (ord(parts[1]) - ord(parts[0])) // step + 1)
    except (ValueError, IndexError):
        pass
    return 1


def expand_range(pattern: str, location: Location) -> list[str]:
    """`web[01:03]` -> web01, web02, web03; `db[a:c]`; `[01:09:2]` steps; several ranges nest.
    One name gives at most `MAX_RANGE` hosts: the product of its ranges is checked before
    anything is expanded."""
    total, bodies = 1, _RANGE.findall(pattern)
    for body in bodies if len(bodies) > 1 else ():   # one range: _expand says it per range
        total *= _range_count(body)
        if total > MAX_RANGE:
            raise InputError(f"host name '{pattern}' expands to more than {MAX_RANGE} hosts",
                             location, f"at most {MAX_RANGE} hosts from one name")
    return _expand(pattern, location)


def _expand(pattern: str, location: Location) -> list[str]:
    match = _RANGE.search(pattern)
    if match is None:
        if "[" in pattern or "]" in pattern:
            raise InputError(f"unbalanced brackets in host name '{pattern}'", location,
                             "a range such as web[01:50], or a name without brackets")
        return [pattern]
    parts = match.group(1).split(":")
    bad = f"bad host range '[{match.group(1)}]' in '{pattern}'"
    if len(parts) not in (2, 3) or not all(parts[:2]):
        raise InputError(bad, location, "[START:END] or [START:END:STEP], e.g. web[01:50]")
    start, end = parts[0], parts[1]
    try:
        step = int(parts[2]) if len(parts) == 3 and parts[2] else 1
    except ValueError:
        raise InputError(bad, location, "a whole-number step, e.g. [01:50:2]") from None
    if step < 1:
        raise InputError(bad, location, "a step of 1 or more")
    if start.isdigit() and end.isdigit():
        if int(start) > int(end):
            raise InputError(bad, location, "START not above END")
        if (int(end) - int(start)) // step >= MAX_RANGE:
            raise InputError(bad, location, f"at most {MAX_RANGE} hosts in one range")
        width = len(start) if start.startswith("0") else 0
        values = [str(n).zfill(width) for n in range(int(start), int(end) + 1, step)]
    elif len(start) == 1 == len(end) and start.isalpha() and end.isalpha():
        if start > end:
            raise InputError(bad, location, "START not after END")
        values = [chr(c) for c in range(ord(start), ord(end) + 1, step)]
    else:
        raise InputError(bad, location, "numbers ([01:50]) or single letters ([a:f])")
    head, tail = pattern[:match.start()], pattern[match.end():]
    return [name for value in values for name in _expand(head + value + tail, location)]


def _sub_mapping(node: LocatedDict, key: str, group: str, expected: str) -> LocatedDict:
    """`hosts:` or `children:` of a group: a mapping, empty when absent."""
    value = node.get(key)
    if value is None:
        return LocatedDict()
    if not isinstance(value, LocatedDict):
        raise InputError(f"'{key}' of group '{group}' is not a mapping",
                         node.value_location(key), expected)
    return value


@dataclass
class _VarsDef:
    values: dict[str, Any] = field(default_factory=dict)
    locations: dict[str, Location] = field(default_factory=dict)


@dataclass
class _HostDef(_VarsDef):
    location: Location | None = None
    groups: list[str] = field(default_factory=list)


@dataclass
class _GroupDef(_VarsDef):
    location: Location | None = None
    hosts: list[str] = field(default_factory=list)
    host_set: set[str] = field(default_factory=set)   # `hosts` as a set: membership is O(1)
    children: list[str] = field(default_factory=list)
    child_locations: dict[str, Location] = field(default_factory=dict)


class InventoryLoader:
    """Collects groups and hosts from one or more files, then `build()`s the Inventory."""

    def __init__(self, warnings: TextIO | None = None) -> None:
        self.groups: dict[str, _GroupDef] = {}
        self.hosts: dict[str, _HostDef] = {}
        self.sources: list[str] = []
        self.warnings: list[str] = []
        self._warned: set[tuple[Location | None, str]] = set()
        self._stream = warnings if warnings is not None else sys.stderr

    # ---- reading -------------------------------------------------------------------------

    def add_file(self, path: str) -> None:
        """Read one inventory file (YAML, or Ansible INI) into the loader."""
        from pushinstall.inventory.ini import load_inventory_file

        data = load_inventory_file(path)
        self.sources.append(path)
        top = Location(path, 1, 1)
        if data is None:
            raise InputError("the inventory is empty", top, "a mapping such as 'all: {hosts: ...}'")
        if not isinstance(data, LocatedDict):
            raise InputError(f"the inventory is {kind_of(data)}",
                             getattr(data, "location", top), "a mapping of groups, e.g. 'all:'")
        for name, node in data.items():
            self._group(str(name), node, data.key_location(name), data.value_location(name))
            if name != "all":
                self._link("all", str(name), data.key_location(name))

    def _link(self, parent: str, child: str, location: Location) -> None:
        group = self.groups.setdefault(parent, _GroupDef(location=location))
        if child not in group.children:
            group.children.append(child)
            group.child_locations[child] = location

    def _group(self, name: str, node: Any, key_loc: Location, value_loc: Location) -> None:
        group = self.groups.setdefault(name, _GroupDef(location=key_loc))
        group.location = group.location or key_loc
        if node is None:
            return
        if not isinstance(node, LocatedDict):
            raise InputError(f"group '{name}' is {kind_of(node)}",
                             value_loc, "a mapping with hosts:, children: or vars:")
        check_keys(node, GROUP_KEYS, f"group '{name}'")
        hosts = _sub_mapping(node, "hosts", name,
                             "host names as keys, e.g. 'web01:' or 'web01: {port: 5986}'")
        for pattern, host_vars in hosts.items():
            self._hosts(name, "" if pattern is None else str(pattern), host_vars,
                        hosts.key_location(pattern), hosts.value_location(pattern))
        children = _sub_mapping(node, "children", name,
                                "child group names as keys, e.g. 'site_ams:'")
        for child, child_node in children.items():
            self._link(name, str(child), children.key_location(child))
            self._group(str(child), child_node, children.key_location(child),
                        children.value_location(child))
        if node.get("vars") is not None:
            self._vars(group, node["vars"], node.value_location("vars"), f"group '{name}'")

    def _hosts(self, group: str, pattern: str, host_vars: Any, key_loc: Location,
               value_loc: Location) -> None:
        if not pattern.strip():
            raise InputError("a host without a name", key_loc, "a host name or address")
        if host_vars is not None and not isinstance(host_vars, LocatedDict):
            raise InputError(f"host '{pattern}' has {kind_of(host_vars)} for vars",
                             value_loc, "a mapping of vars, or nothing")
        for name in expand_range(pattern, key_loc):
            host = self.hosts.setdefault(name, _HostDef(location=key_loc))
            if group not in host.groups:
                host.groups.append(group)
            members = self.groups[group]
            if name not in members.host_set:
                members.host_set.add(name)
                members.hosts.append(name)
            if host_vars:
                self._vars(host, host_vars, value_loc, f"host '{name}'")

    def _vars(self, target: _VarsDef, node: Any, location: Location, what: str) -> None:
        if not isinstance(node, LocatedDict):
            raise InputError(f"'vars' of {what} is not a mapping", location,
                             "a mapping of variable names to values")
        for key, value in node.items():
            if not isinstance(key, str) or not key.isidentifier():
                raise InputError(f"variable name '{key}' in {what} is not valid",
                                 node.key_location(key), "letters, digits and _, not first a digit")
            value_loc = node.value_location(key)
            ref = secret_ref(key, value, value_loc, Path(value_loc.path).parent)
            if ref is not None:
                value = ref
            elif is_secret_name(key) and isinstance(value, (str, int)) and value != "":
                self._warn(value_loc)
                value = Secret(str(value), source=f"plaintext {value_loc}")
            target.values[key] = value
            target.locations[key] = value_loc

    def _warn(self, location: Location | None, text: str = PLAINTEXT_WARNING) -> None:
        """Print and keep a warning, once per place: a group var read for every host of
        the group is one warning, not one per host."""
        if (location, text) in self._warned:
            return
        self._warned.add((location, text))
        line = f"{location}: {text}" if location is not None else text
        self.warnings.append(line)
        print(line, file=self._stream)

    # ---- building ------------------------------------------------------------------------

    def _depths(self) -> dict[str, int]:
        """Each group's depth below `all` (longest path); a cycle is an `InputError`."""
        depth: dict[str, int] = {}
        state: dict[str, str] = {}

        def visit(name: str, level: int, trail: list[str]) -> None:
            if state.get(name) == "open":
                cycle = " -> ".join([*trail[trail.index(name):], name])
                parent = trail[-1]
                raise InputError(f"circular groups: {cycle}",
                                 self.groups[parent].child_locations.get(name),
                                 "groups that do not contain themselves")
            if depth.get(name, -1) >= level and state.get(name) == "done":
                return
            depth[name] = max(depth.get(name, 0), level)
            state[name] = "open"
            for child in self.groups.get(name, _GroupDef()).children:
                visit(child, level + 1, [*trail, name])
            state[name] = "done"

        visit("all", 0, [])
        return depth

    def _merge_groups(self, groups: list[str], parents: dict[str, list[str]],
                      depth: dict[str, int]) -> tuple[list[str], dict[str, Any], dict[str, Any],
                                                      dict[str, Location]]:
        """For a host directly in `groups`: every group it is in (by precedence), and those
        groups' merged vars, connection settings and the locations that set them."""
        member_of: set[str] = set()
        stack = list(groups)
        while stack:
            group_name = stack.pop()
            if group_name not in member_of:
                member_of.add(group_name)
                stack.extend(parents.get(group_name, []))
        ordered = sorted(member_of | {"all"}, key=lambda g: (depth.get(g, 1), g))
        merged: dict[str, Any] = {}
        settings: dict[str, Any] = {}
        setters: dict[str, Location] = {}
        for source in (self.groups[g] for g in ordered):
            merged.update(source.values)
            for setting, (value, var) in settings_from_vars(source.values).items():
                settings[setting] = value
                setters[setting] = source.locations[var]
        return ordered, merged, settings, setters

    def build(self) -> Inventory:
        """The merged Inventory: vars by precedence, connections checked."""
        self.groups.setdefault("all", _GroupDef(location=Location(
            self.sources[0] if self.sources else "<inventory>", 1, 1)))
        depth = self._depths()
        parents: dict[str, list[str]] = {}
        for name, group in self.groups.items():
            for child in group.children:
                parents.setdefault(child, []).append(name)
        inventory = Inventory(sources=list(self.sources), warnings=self.warnings)
        for name, group in self.groups.items():
            inventory.groups[name] = Group(name, dict(group.values), list(group.hosts),
                                           list(group.children), group.location)
        by_groups: dict[tuple[str, ...], tuple[list[str], dict[str, Any], dict[str, Any],
                                               dict[str, Location]]] = {}
        for name, host_def in self.hosts.items():
            # Hosts of the same groups share the group part of the merge (100k hosts of one
            # range are one merge, not 100k).
            key = tuple(host_def.groups)
            if key not in by_groups:
                by_groups[key] = self._merge_groups(host_def.groups, parents, depth)
            ordered, group_vars, group_settings, group_setters = by_groups[key]
            merged = {**group_vars, **host_def.values}
            settings, setters = dict(group_settings), dict(group_setters)
            for setting, (value, var) in settings_from_vars(host_def.values).items():
                settings[setting] = value
                setters[setting] = host_def.locations[var]

            def where(setting: str, setters: dict[str, Location] = setters,
                      fallback: Location | None = host_def.location) -> Location | None:
                return setters.get(setting, fallback)

            connection = build_connection(name, settings, where, host_def.location, self._warn)
            inventory.hosts[name] = Host(
                name, [g for g in ordered if g not in ("all", "ungrouped")], merged,
                connection, host_def.location,
            )
        return inventory
