"""The agent's text without what only a reader needs: comments, indentation, blank lines.

Issue 12: the agent crosses the wire on first contact, and its comments and indentation are a
fifth of it after gzip. What the target compiles and runs is this compact text, so the tests
compile and parse exactly it (tests/test_agent_core.py, tests/test_agent_ps1.py).

`csharp` is a small lexer: string, verbatim string and character literals are kept as written,
`//` and `/* */` comments outside them are dropped; a literal over several lines (whose
whitespace would be content) is refused. `powershell` drops only whole-line
comments (`# ...` and `<# ... #>` blocks that start a line) and refuses text with a here-string,
whose lines must stay as they are; `powershell_line` also joins the lines into one.
"""

from __future__ import annotations

import itertools
import re

_HERE_STRING = re.compile(r"@['\"]\s*$", re.MULTILINE)


def csharp(source: str) -> str:
    """`source` without comments, leading whitespace and blank lines (C# 5 lexical rules)."""
    out: list[str] = []
    i, n = 0, len(source)
    state = "code"      # code, string, verbatim, char
    while i < n:
        c = source[i]
        two = source[i:i + 2]
        if state == "code":
            if two == "//":
                end = source.find("\n", i)
                i = n if end < 0 else end
                continue
            if two == "/*":
                end = source.find("*/", i + 2)
                if end < 0:
                    raise ValueError("an unterminated /* comment in the C# core")
                i = end + 2
                out.append(" ")
                continue
            if two == '@"':
                state = "verbatim"
                out.append(two)
                i += 2
                continue
            if c == '"':
                state = "string"
            elif c == "'":
                state = "char"
            out.append(c)
            i += 1
            continue
        if state == "verbatim":
            if c == "\n":
                raise ValueError("a verbatim string over several lines in the C# core")
            if two == '""':
                out.append(two)
                i += 2
                continue
            if c == '"':
                state = "code"
            out.append(c)
            i += 1
            continue
        # a regular string or char literal: a backslash escapes the next character
        if c == "\\" and i + 1 < n:
            out.append(two)
            i += 2
            continue
        if (state == "string" and c == '"') or (state == "char" and c == "'"):
            state = "code"
        elif c == "\n":
            raise ValueError("a newline inside a C# string literal")
        out.append(c)
        i += 1
    if state != "code":
        raise ValueError("an unterminated literal in the C# core")
    return _squeeze("".join(out))


def powershell(source: str) -> str:
    """`source` without whole-line comments, leading whitespace and blank lines."""
    if _HERE_STRING.search(source):
        raise ValueError("the shim holds a here-string: its lines cannot be compacted")
    lines: list[str] = []
    in_block = False
    for raw in source.split("\n"):
        line = raw.strip()
        if in_block:
            in_block = "#>" not in line
            continue
        if line.startswith("<#"):
            in_block = "#>" not in line[2:]
            continue
        if not line or line.startswith("#"):
            continue
        lines.append(line)
    return "\n".join(lines) + "\n"


def powershell_line(source: str) -> str:
    """`powershell(source)` as ONE line: statements joined by `; `, blocks by a space. Over PSRP
    a script's newline is serialized as `_x000A_` (7 bytes), so a short script sent on every run
    (the bootstrap) goes as one line. Refuses a line that continues on the next (a trailing
    backtick), which a `;` would cut."""
    lines = powershell(source).rstrip("\n").split("\n")
    joined = lines[0]
    for previous, line in itertools.pairwise(lines):
        if previous.endswith("`"):
            raise ValueError("a line continued with a backtick cannot be joined")
        block = previous.endswith(("{", "(", "|", ",")) or line.startswith(("}", ")"))
        joined += (" " if block else "; ") + line
    return joined + "\n"


def _squeeze(text: str) -> str:
    lines = [line.strip() for line in text.split("\n")]
    return "\n".join(line for line in lines if line) + "\n"
