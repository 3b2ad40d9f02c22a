"""remote/compact.py: the agent's text without comments and indentation, literals untouched.
The whole compact core is compiled under mono by tests/test_agent_core.py and the compact shim
parsed by tests/test_agent_ps1.py; these pin the lexer's edges."""

from __future__ import annotations

import pytest

from pushinstall.remote import compact


def test_csharp_drops_comments_but_not_what_looks_like_one_inside_a_literal() -> None:
    source = (
        "// a file comment\n"
        "    /// <summary>doc</summary>\n"
        '    string url = "http://x/*y*/"; // trailing\n'
        "    char slash = '/'; /* block */ int a = 1;\n"
        '    string path = @"C:\\dir\\"; string q = @"say ""//hi""";\n'
        '    string esc = "a\\"//b";\n'
        "\n"
    )
    assert compact.csharp(source) == (
        'string url = "http://x/*y*/";\n'
        "char slash = '/';   int a = 1;\n"
        'string path = @"C:\\dir\\"; string q = @"say ""//hi""";\n'
        'string esc = "a\\"//b";\n'
    )


@pytest.mark.parametrize("source", ['string s = @"two\nlines";\n', "int a; /* open\n",
                                    'string s = "open;\n'])
def test_csharp_refuses_what_it_cannot_compact_safely(source: str) -> None:
    with pytest.raises(ValueError):
        compact.csharp(source)


def test_powershell_drops_whole_line_comments_and_help_blocks() -> None:
    source = (
        "# header\n"
        "function F {\n"
        "    <#\n"
        "    .SYNOPSIS\n"
        "    help\n"
        "    #>\n"
        "    param($A)  # a trailing comment stays (a # may be inside a string)\n"
        "    <# one line #>\n"
        "    '#not a comment'\n"
        "}\n"
    )
    assert compact.powershell(source) == (
        "function F {\n"
        "param($A)  # a trailing comment stays (a # may be inside a string)\n"
        "'#not a comment'\n"
        "}\n"
    )


def test_powershell_refuses_a_here_string() -> None:
    with pytest.raises(ValueError, match="here-string"):
        compact.powershell("$a = @'\n  text\n'@\n")


def test_powershell_line_joins_statements_and_keeps_blocks_whole() -> None:
    source = ("param($A)\n$x = 1\nif ($x) {\n    'a'\n} else {\n    'b'\n}\n"
              "Get-Thing |\n  Out-Null\n")
    assert compact.powershell_line(source) == (
        "param($A); $x = 1; if ($x) { 'a' } else { 'b' }; Get-Thing | Out-Null\n")
    with pytest.raises(ValueError, match="backtick"):
        compact.powershell_line("Get-Thing `\n  -Name x\n")
