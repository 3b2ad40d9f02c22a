"""Host patterns as Ansible users know them: the playbook's `hosts` and `--limit`.

A pattern is a list of terms split on `,` (or `:` as Ansible also allows): plain terms are
unioned, then each `&term` intersects, then each `!term` excludes. A term is `all` or `*`, a
group name, a host name, a glob (`web*`, `db0[1-3]`), a regex `~web\\d+`, or `@file` (one
host or term a line; `#` comments). A limit file is read as secret and var files are: only a
regular file, up to `MAX_LIMIT_BYTES` (a FIFO would block, `/dev/zero` never ends).
"""

from __future__ import annotations

import fnmatch
import re

from pushinstall.errors import InputError, Location
from pushinstall.source import read_text

COMMAND_LINE = Location("<command line>", 1, 1)
MAX_LIMIT_BYTES = 16 * 1024 * 1024   # 100k host names of ~60 characters, with room to spare


def split_terms(pattern: str) -> list[str]:
    """`"a,b:&c"` -> `["a", "b", "&c"]`; a colon splits only where no comma is used."""
    separator = "," if "," in pattern or "[" in pattern or "~" in pattern else ":"
    return [term.strip() for term in pattern.split(separator) if term.strip()]


def _read_file_terms(name: str, location: Location) -> list[str]:
    """The terms of limit file `name`; a missing file is located at the command line (where
    its name was written), anything wrong with the file itself at the file."""
    what = f"a regular UTF-8 text file of at most {MAX_LIMIT_BYTES} bytes, one host a line"
    try:
        text = read_text(name, MAX_LIMIT_BYTES, what)
    except InputError as error:
        if error.message == "file not found":
            raise InputError(f"cannot read limit file '{name}': No such file or directory",
                             location, "a file with one host a line") from None
        raise InputError(f"limit file {error.message}", error.location, error.expected) \
            from None
    lines = text.splitlines()
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def match_term(term: str, hosts: list[str], groups: dict[str, list[str]]) -> list[str]:
    """The hosts one term names, in inventory order."""
    if term in ("all", "*"):
        return list(hosts)
    if term in groups:
        return list(groups[term])
    if term in hosts:
        return [term]
    if term.startswith("~"):
        try:
            regex = re.compile(term[1:])
        except re.error:
            return []
        return [h for h in hosts if regex.search(h)]
    if any(ch in term for ch in "*?["):
        named = {h for h in hosts if fnmatch.fnmatchcase(h, term)}
        for group, members in groups.items():
            if fnmatch.fnmatchcase(group, term):
                named.update(members)
        return [h for h in hosts if h in named]
    return []


def select(pattern: str, hosts: list[str], groups: dict[str, list[str]],
           location: Location) -> list[str]:
    """Host names matched by `pattern`, in inventory order (may be empty)."""
    terms: list[str] = []
    for term in split_terms(pattern):
        prefix = term[0] if term[0] in "!&" else ""
        body = term[len(prefix):]
        if body.startswith("@"):
            terms += [prefix + t for t in _read_file_terms(body[1:], location)]
        else:
            terms.append(term)
    plain = [t for t in terms if t[0] not in "!&"]
    chosen: set[str] = set()
    for term in plain or ["all"]:
        chosen.update(match_term(term, hosts, groups))
    for term in (t for t in terms if t[0] == "&"):
        chosen &= set(match_term(term[1:], hosts, groups))
    for term in (t for t in terms if t[0] == "!"):
        chosen -= set(match_term(term[1:], hosts, groups))
    return [h for h in hosts if h in chosen]
