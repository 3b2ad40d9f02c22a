"""Windows command lines: quote an argument list so that a program gets each item as one argv
entry, and split a command line back the way the Microsoft C runtime does.

`run_process` (docs/ops.md) joins its argument list with these rules on the target; the lab
uses the Python twin here to record command lines and the tests round-trip the two.
"""

from __future__ import annotations

from collections.abc import Sequence

_QUOTE_TRIGGERS = frozenset(' \t\n\v"')


def _quote_argument(arg: str) -> str:
    if arg and not _QUOTE_TRIGGERS.intersection(arg):
        return arg
    out = ['"']
    backslashes = 0
    for ch in arg:
        if ch == "\\":
            backslashes += 1
            continue
        # backslashes are doubled only where a quote follows them (here or the closing one)
        out.append("\\" * (2 * backslashes + 1 if ch == '"' else backslashes))
        out.append(ch)
        backslashes = 0
    out.append("\\" * (2 * backslashes))
    out.append('"')
    return "".join(out)


def windows_argv_quote(args: Sequence[str]) -> str:
    """Join `args` into one Windows command-line string that `CommandLineToArgvW` and the
    Microsoft C runtime split back into exactly `args` (the agent's `ConvertTo-PiArgument`
    applies the same rules). An argument is quoted when it is empty or holds a space, tab,
    newline, vertical tab or double quote; inside quotes a `"` becomes `\\"` and backslashes
    are doubled only before a quote."""
    return " ".join(_quote_argument(arg) for arg in args)


def windows_command_line(path: str, arguments: Sequence[str]) -> str:
    """The command line `run_process` starts (and answers as `command_line`): the executable
    always in double quotes, as .NET's Process.Start writes it, then the quoted arguments."""
    line = f'"{path}"'
    return f"{line} {windows_argv_quote(arguments)}" if arguments else line


def windows_argv_split(cmdline: str) -> list[str]:
    """Split a command line the way the Microsoft C runtime (UCRT) splits arguments: space and
    tab separate outside quotes; `2n` backslashes before `"` give `n` and the quote toggles;
    `2n+1` give `n` and a literal `"`; other backslashes are literal; `""` inside quotes is
    a literal `"`. The program name is split with the same rules, which agree for any path
    without a quote or a trailing backslash."""
    args: list[str] = []
    i, n = 0, len(cmdline)
    while True:
        while i < n and cmdline[i] in " \t":
            i += 1
        if i >= n:
            return args
        arg: list[str] = []
        in_quotes = False
        while i < n and (in_quotes or cmdline[i] not in " \t"):
            ch = cmdline[i]
            if ch == "\\":
                j = i
                while j < n and cmdline[j] == "\\":
                    j += 1
                count = j - i
                if j < n and cmdline[j] == '"':
                    arg.append("\\" * (count // 2))
                    if count % 2:
                        arg.append('"')
                        j += 1
                else:
                    arg.append("\\" * count)
                i = j
            elif ch == '"':
                if in_quotes and i + 1 < n and cmdline[i + 1] == '"':
                    arg.append('"')
                    i += 2
                else:
                    in_quotes = not in_quotes
                    i += 1
            else:
                arg.append(ch)
                i += 1
        args.append("".join(arg))
