"""Host patterns as Ansible users know them: the playbook's `hosts` and `--limit`.

A pattern is a list of terms split on `,` (or `:` as Ansible also allows): plain terms are
unioned, then each `&term` intersects, then each `!term` excludes. A term is `all` or `*`, a
group name, a host name, a glob (`web*`, `db0[1-3]`), a regex `~web\\d+`, or `@file` (one
host or term a line; `#` comments).
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

from pushinstall.errors import InputError, Location

COMMAND_LINE = Location("<command line>", 1, 1)


def split_terms(pattern: str) -> list[str]:
    """`"a,b:&c"` -> `["a", "b", "&c"]`; a colon splits only where no comma is used."""
    separator = "," if "," in pattern or "[" in pattern or "~" in pattern else ":"
    return [term.strip() for term in pattern.split(separator) if term.strip()]


def _read_file_terms(name: str, location: Location) -> list[str]:
    try:
        lines = Path(name).expanduser().read_text(encoding="utf-8-sig").splitlines()
    except OSError as error:
        raise InputError(f"cannot read limit file '{name}': {error.strerror}", location,
                         "a file with one host a line") from None
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
