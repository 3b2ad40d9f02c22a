"""Load YAML files keeping the line and column of every key, value and item.

PyYAML silently keeps the last of two equal keys and forgets positions once it builds Python
objects. `load_yaml` refuses duplicate keys and returns `LocatedDict` / `LocatedList`, which
remember where each of their keys, values and items stood, so a later check can say
`path:line:col: what is wrong (what was expected)`.

Hostile files end as `InputError`s too, in bounded time and memory: only regular files are
read (a FIFO or `/dev/zero` is refused before it is opened), up to `MAX_YAML_BYTES`; nesting
deeper than `MAX_DEPTH` and documents that aliases (`&a` / `*a`) expand past `MAX_NODES`
values (the "billion laughs") are refused before anything walks them.
"""

from __future__ import annotations

import difflib
import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

from pushinstall.errors import InputError, Location

MAX_YAML_BYTES = 64 * 1024 * 1024   # a 100k-host inventory with vars is a few MB
MAX_DEPTH = 100                     # far past any real inventory; far below Python's stack
MAX_NODES = 5_000_000               # values after alias expansion


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


class _Located(Composer, SafeConstructor, Resolver):
    """PyYAML's safe composer and constructor building located containers, refusing duplicate
    keys, deep nesting and alias bombs; over any parser's events."""

    if TYPE_CHECKING:
        def peek_event(self) -> Any:
            """The next event of the parser this is mixed with."""

        def dispose(self) -> None:
            """Free the parser's state."""

    source_path = "<string>"
    _depth = 0

    def __init__(self) -> None:
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        # The composer and the constructor recurse per level: refuse before Python's stack
        # ends in a RecursionError.
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise InputError(f"nesting deeper than {MAX_DEPTH} levels",
                                 Location(self.source_path, mark.line + 1, mark.column + 1),
                                 f"at most {MAX_DEPTH} nested lists or mappings")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        if node is not None:
            _check_expanded_size(node, self.source_path)
        return node

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


def _check_expanded_size(root: yaml.Node, path: str) -> None:
    """Refuse a document whose aliases expand past `MAX_NODES` values, or refer to
    themselves. Walks the node graph once (each node's expanded size is kept), iteratively."""
    size: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in size:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        if children_done:
            open_nodes.discard(key)
            size[key] = 1 + sum(size[id(child)] for child in children)
            if size[key] > MAX_NODES:
                raise InputError(f"aliases expand this to more than {MAX_NODES} values",
                                 _location(path, node), "a document without an alias bomb")
            continue
        if key in open_nodes:
            raise InputError("an alias refers to the value that contains it",
                             _location(path, node), "aliases of finished values only")
        open_nodes.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in open_nodes:
                raise InputError("an alias refers to the value that contains it",
                                 _location(path, child), "aliases of finished values only")
            stack.append((child, False))



VAULT_ALTERNATIVES = "{file: PATH}, {env: NAME} or {prompt: true} instead"


def _refuse_vault(loader: _Located, node: yaml.Node) -> Any:
    """Ansible Vault values cannot be decrypted here: say so, and what to use instead."""
    raise InputError("an Ansible Vault value (!vault) cannot be read by pushinstall",
                     _location(loader.source_path, node), VAULT_ALTERNATIVES)


for _tag, _constructor in (("tag:yaml.org,2002:map", _Located.construct_yaml_map),
                           ("tag:yaml.org,2002:seq", _Located.construct_yaml_seq),
                           ("!vault", _refuse_vault)):
    # the stubs allow PyYAML's own loader classes only
    _Located.add_constructor(_tag, _constructor)  # type: ignore[type-var]


class _Loader(Reader, Scanner, Parser, _Located):
    """The located loader over PyYAML's own (Python) reader, scanner and parser."""

    def __init__(self, stream: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        _Located.__init__(self)


class _ReadAgain(yaml.YAMLError):
    """libyaml's reading of this document would differ from PyYAML's."""


_FastLoader: Callable[[str], _Located] | None = None
try:
    from yaml._yaml import CParser
except ImportError:     # PyYAML built without libyaml: its Python parser alone
    pass
else:
    class _CLoader(_Located, CParser):
        """The same over libyaml's parser (7x faster on the ASR playbook). Its error messages
        are libyaml's, and it places an empty value in a flow collection (`{path: }`) where
        the next token starts, PyYAML where the `:` ends: such a document, and one it
        refuses, is read again by `_Loader`, so every message and location stays PyYAML's."""

        _flow = 0

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            _Located.__init__(self)

        def compose_sequence_node(self, anchor: Any) -> Any:
            return self._counting_flow(super().compose_sequence_node, anchor)

        def compose_mapping_node(self, anchor: Any) -> Any:
            return self._counting_flow(super().compose_mapping_node, anchor)

        def _counting_flow(self, compose: Callable[[Any], Any], anchor: Any) -> Any:
            flow = bool(self.peek_event().flow_style)
            self._flow += flow
            try:
                return compose(anchor)
            finally:
                self._flow -= flow

        def compose_scalar_node(self, anchor: Any) -> Any:
            event = self.peek_event()
            if self._flow and event.value == "" and not event.style:
                raise _ReadAgain("an empty value in a flow collection")
            return super().compose_scalar_node(anchor)

    _FastLoader = _CLoader


def load_yaml_text(text: str, path: str = "<string>") -> Any:
    """Parse YAML text into located containers; any YAML error becomes an `InputError`."""
    if _FastLoader is not None:
        fast = _FastLoader(text)
        fast.source_path = path
        try:
            return fast.get_single_data()
        except yaml.YAMLError:
            pass            # PyYAML's own parser says what is wrong, as it always has
        finally:
            fast.dispose()
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


def _position(data: bytes, offset: int) -> tuple[int, int]:
    """The 1-based line and column of byte `offset` in `data`."""
    before = data[:offset]
    line = before.count(b"\n") + 1
    start = before.rfind(b"\n") + 1
    return line, len(before[start:].decode("utf-8", errors="replace")) + 1


def read_text(path: str | Path, limit: int, what: str) -> str:
    """The UTF-8 text of a regular file of at most `limit` bytes. A FIFO, a device or a
    directory is refused before it is opened (it could block or never end), a longer file
    after `limit` bytes; every problem is an `InputError` at the file's 1:1 (a bad UTF-8 byte
    at its line and column) whose message does not repeat the file's name."""
    name = str(path)
    top = Location(name, 1, 1)
    try:
        mode = os.stat(Path(path).expanduser()).st_mode
        if stat.S_ISDIR(mode):
            raise InputError("is a directory", top, what)
        if not stat.S_ISREG(mode):
            raise InputError("is not a regular file", top, what)
        with open(Path(path).expanduser(), "rb") as stream:
            data = stream.read(limit + 1)
    except FileNotFoundError:
        raise InputError("file not found", top, "an existing file") from None
    except OSError as error:
        raise InputError(f"cannot read file: {error.strerror}", top, "a readable file") from None
    if len(data) > limit:
        raise InputError(f"larger than {limit} bytes", top, what)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line, column = _position(data, error.start)
        raise InputError(f"not UTF-8 text (byte {error.start})", Location(name, line, column),
                         what) from None


def load_yaml(path: str | Path) -> Any:
    """Read and parse a YAML file; a missing, unreadable, special or too large file is an
    `InputError`."""
    return load_yaml_text(read_text(path, MAX_YAML_BYTES, "a UTF-8 YAML file"), str(path))


# The words a boolean may be written as, in inventories, playbooks and resource arguments
# alike (YAML 1.1 already reads unquoted yes/no as booleans; these are the quoted or templated
# forms). Case does not matter.
BOOLEAN_WORDS = {"true": True, "yes": True, "false": False, "no": False}


def boolean_value(value: Any) -> bool | None:
    """`value` as a boolean: a bool, or one of BOOLEAN_WORDS; None for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return BOOLEAN_WORDS.get(value.strip().lower())
    return None


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
