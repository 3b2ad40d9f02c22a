"""agent.ps1 (the shim, with the C# core in a here-string) checked without Windows: it parses,
it is Windows PowerShell 3.0 code, the core answers exactly the ops and fact kinds of ops.py,
and a request only ever arrives as data. tests/test_agent_core.py runs the core under mono.

The lint walks the tree-sitter-pwsh syntax tree (node types), so a forbidden word inside a
string, a here-string (the C# helper) or a comment is not a hit. The lint is itself tested on
small bad snippets, each of which it must catch, and on tricky good ones it must pass.
Running the ops themselves needs a real Windows host: tests/windows/test_real_host.py.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator

import pytest
import tree_sitter_pwsh
from tree_sitter import Language, Node, Parser, Tree

from pushinstall.remote import bootstrap, ops, receiver

PARSER = Parser(Language(tree_sitter_pwsh.language()))

# Cmdlets that Windows PowerShell 3.0 lacks (4.0, 5.x or 6+), or that must never be used.
FORBIDDEN_COMMANDS = {
    "write-host": "Write-Host (output goes to the host, not the answer)",
    "read-host": "Read-Host (would wait for input forever)",
    "invoke-expression": "Invoke-Expression (requests are data, never code)",
    "iex": "iex (requests are data, never code)",
    "expand-archive": "Expand-Archive (PowerShell 5)",
    "compress-archive": "Compress-Archive (PowerShell 5)",
    "get-filehash": "Get-FileHash (PowerShell 4)",
    "test-netconnection": "Test-NetConnection (PowerShell 4 / Windows 8.1)",
    "get-itempropertyvalue": "Get-ItemPropertyValue (PowerShell 5)",
    "new-temporaryfile": "New-TemporaryFile (PowerShell 5)",
    "get-computerinfo": "Get-ComputerInfo (PowerShell 5.1)",
    "get-timezone": "Get-TimeZone (PowerShell 5.1)",
    "get-uptime": "Get-Uptime (PowerShell 6)",
    "join-string": "Join-String (PowerShell 7)",
    "test-json": "Test-Json (PowerShell 6)",
}
FORBIDDEN_PARAMETERS = {
    "-parallel": "-Parallel (PowerShell 7)",
    "-ashashtable": "-AsHashtable (PowerShell 6)",
}
# Methods and commands whose result, left at statement level inside a function, becomes
# part of the function's output and corrupts the value it returns.
VALUE_RETURNING_METHODS = {
    "add", "append", "appendline", "appendformat", "seek", "createdirectory", "createsubkey",
    "start", "waitone", "join", "wait", "waitforexit",
}
VALUE_RETURNING_COMMANDS = {"new-item", "new-psdrive", "mkdir", "md", "new-itemproperty"}


def parse(source: str) -> tuple[Tree, bytes]:
    data = source.encode("utf-8")
    return PARSER.parse(data), data


def walk(node: Node) -> Iterator[Node]:
    yield node
    for child in node.children:
        yield from walk(child)


def text(node: Node, data: bytes) -> str:
    return data[node.start_byte:node.end_byte].decode("utf-8")


def command_name(node: Node, data: bytes) -> str | None:
    """The name a `command` node calls (also `& 'name'`), lower case; None for `& $var`."""
    for child in node.children:
        if child.type == "command_name":
            return text(child, data).lower()
        if child.type == "command_name_expr":
            name = text(child, data).strip("'\"")
            return None if name.startswith("$") else name.lower()
    return None


def _is_bare_invocation(pipeline: Node) -> Node | None:
    """The invocation_expression a statement consists of, when nothing consumes its value."""
    if pipeline.type != "pipeline" or len(pipeline.named_children) != 1:
        return None
    chain = pipeline.named_children[0]
    if chain.type != "pipeline_chain" or len(chain.named_children) != 1:
        return None
    unary = chain.named_children[0]
    if unary.type != "unary_expression" or len(unary.named_children) != 1:
        return None
    inner = unary.named_children[0]
    return inner if inner.type == "invocation_expression" else None


def _leak(pipeline: Node, data: bytes) -> str | None:
    """A statement whose value would join the enclosing function's output, if it is one."""
    invocation = _is_bare_invocation(pipeline)
    if invocation is not None:
        names = [c for c in invocation.children if c.type == "member_name"]
        if names and text(names[0], data).lower() in VALUE_RETURNING_METHODS:
            return "method result leaks into the output (use [void] or assign)"
    chain = pipeline.named_children[0] if pipeline.named_children else None
    if chain is None or chain.type != "pipeline_chain" or len(chain.named_children) != 1:
        return None
    only = chain.named_children[0]
    if only.type == "command" and command_name(only, data) in VALUE_RETURNING_COMMANDS:
        return "command output leaks into the output (pipe to Out-Null)"
    return None


def lint(source: str) -> list[str]:
    """Findings for `source` as `line: rule` strings; empty when it is PowerShell 3.0 code."""
    tree, data = parse(source)
    findings: list[str] = []

    def report(node: Node, rule: str) -> None:
        findings.append(f"{node.start_point[0] + 1}: {rule}")

    for node in walk(tree.root_node):
        kind = node.type
        if kind == "ERROR" or node.is_missing:
            report(node, "parse error")
        elif kind in ("class_statement", "enum_statement"):
            report(node, "class/enum definition (PowerShell 5)")
        elif kind in ("using_statement", "using_directive_list"):
            report(node, "using statement (PowerShell 5)")
        elif kind == "ternary_expression":
            report(node, "ternary ? : (PowerShell 7)")
        elif kind == "null_coalesce_expression":
            report(node, "?? (PowerShell 7)")
        elif kind == "??=":
            report(node, "??= (PowerShell 7)")
        elif kind in ("?", "?.", "?["):
            report(node, "null-conditional ?. / ?[ (PowerShell 7)")
        elif kind == "pipeline_chain_tail":
            report(node, "&& / || between pipelines (PowerShell 7)")
        elif kind == "named_block" and text(node.children[0], data).lower() == "clean":
            report(node, "clean {} block (PowerShell 7.3)")
        elif kind == "invocation_expression":
            names = [c for c in node.children if c.type == "member_name"]
            static = any(c.type == "::" for c in node.children)
            if static and names and text(names[0], data).lower() == "new":
                report(node, "::new() (PowerShell 5)")
        elif kind == "command":
            name = command_name(node, data)
            if name in FORBIDDEN_COMMANDS:
                report(node, FORBIDDEN_COMMANDS[name])
        elif kind == "command_parameter":
            parameter = text(node, data).lower().rstrip(":")
            if parameter in FORBIDDEN_PARAMETERS:
                report(node, FORBIDDEN_PARAMETERS[parameter])
        if kind == "pipeline" and node.parent is not None and node.parent.type == "statement_list":
            leak = _leak(node, data)
            if leak is not None:
                report(node, leak)
    return findings


# ---------------------------------------------------------------- the lint works

BAD_SNIPPETS = [
    ("class Foo { [int]$a }", "class/enum"),
    ("enum Color { Red; Green }", "class/enum"),
    ("using namespace System.IO", "using statement"),
    ("$x = [System.Text.StringBuilder]::new()", "::new()"),
    ("$t = [type]'Text.StringBuilder'\n$x = $t::New(4)", "::new()"),
    ("$a = $b ? 1 : 2", "ternary"),
    ("$a = $b ?? 2", "??"),
    ("$a ??= 3", "??="),
    ("$n = ${b}?.Length", "parse error"),
    ("git pull && echo ok", "&& / ||"),
    ("git pull || echo no", "&& / ||"),
    ("1..3 | ForEach-Object -Parallel { $_ }", "-Parallel"),
    ("function f {\n  process { 1 }\n  clean { 2 }\n}", "clean {}"),
    ("Write-Host 'hello'", "Write-Host"),
    ("write-host hello", "Write-Host"),
    ("& 'Write-Host' x", "Write-Host"),
    ("Expand-Archive -Path a.zip -DestinationPath b", "Expand-Archive"),
    ("Get-FileHash C:\\x.exe -Algorithm SHA256", "Get-FileHash"),
    ("Test-NetConnection cs -Port 443", "Test-NetConnection"),
    ("Get-ItemPropertyValue HKLM:\\X -Name Y", "Get-ItemPropertyValue"),
    ("Invoke-Expression $request", "Invoke-Expression"),
    ("iex $request", "iex"),
    ("ConvertFrom-Json $t -AsHashtable", "-AsHashtable"),
    ("function f {\n  $list.Add(1)\n  return 2\n}", "method result leaks"),
    ("function f {\n  $sb.Append('x')\n}", "method result leaks"),
    ("function f {\n  [IO.Directory]::CreateDirectory('C:\\x')\n}", "method result leaks"),
    ("function f {\n  New-Item -ItemType Directory C:\\x\n}", "command output leaks"),
    ("function f { if ($a) { 1 }", "parse error"),
]


@pytest.mark.parametrize(("snippet", "rule"), BAD_SNIPPETS)
def test_lint_catches(snippet: str, rule: str) -> None:
    findings = lint(snippet)
    assert any(rule in finding for finding in findings), findings


GOOD_SNIPPETS = [
    "# Write-Host and Expand-Archive in a comment; class Foo {}; $a ?? $b\n$x = 1",
    "$s = 'Invoke-Expression, Get-FileHash, ::new( and && || in a string'",
    "$cs = @'\npublic class TailReader { Queue<string> q = new Queue<string>(); }\n'@",
    "$x = New-Object System.Text.StringBuilder\n[void]$x.Append('a')\n$n = $x.Append('b')",
    "$x.Add(1) | Out-Null\n$null = $list.Add(2)",
    "New-Item -ItemType Directory C:\\x | Out-Null",
    "$v = [System.Text.RegularExpressions.Regex]::Match('a', 'a')",
    "if ($a -and $b) { 'x' } elseif (-not $c) { 'y' }",
    "function Get-X {\n  param($A, [string]$B = '')\n  return ,$B\n}",
]


@pytest.mark.parametrize("snippet", GOOD_SNIPPETS)
def test_lint_passes_good_code(snippet: str) -> None:
    assert lint(snippet) == []


# ---------------------------------------------------------------- the agent itself

AGENT = ops.agent_source()


def test_agent_parses_without_error_or_missing_nodes() -> None:
    tree, data = parse(AGENT)
    bad = [n for n in walk(tree.root_node) if n.type == "ERROR" or n.is_missing]
    assert not tree.root_node.has_error
    assert bad == []
    assert len(data) > 10_000          # the C# core rides along in a here-string


def test_agent_is_powershell_3_code() -> None:
    assert lint(AGENT) == []


def functions(source: str = AGENT) -> dict[str, Node]:
    tree, data = parse(source)
    found: dict[str, Node] = {}
    for node in walk(tree.root_node):
        if node.type == "function_statement":
            name = next(c for c in node.children if c.type == "function_name")
            found[text(name, data)] = node
    return found


SHIM = ops.agent_path().read_text(encoding="utf-8")
CORE = ops.agent_core_source()


def csharp_table(name: str) -> set[str]:
    """The string keys of the C# dictionary initializer `name` (`{ "key", Handler },`)."""
    match = re.search(name + r" = new Dictionary<string, \w+>\s*\{(.*?)\n\s*\};", CORE,
                      re.DOTALL)
    assert match is not None, name
    return set(re.findall(r'\{ "([a-z_]+)", [A-Za-z.]+ \}', match.group(1)))


def test_shim_is_short_and_loads_the_core_once() -> None:
    assert len(SHIM.splitlines()) < 150
    assert AGENT.startswith("$PushinstallAgentCore = @'\n")
    assert "if (-not ('Pushinstall.Agent.Core' -as [type]))" in SHIM
    assert "Add-Type -TypeDefinition $PushinstallAgentCore" in SHIM
    assert CORE in AGENT


def test_core_answers_exactly_the_op_names_and_fact_kinds() -> None:
    assert csharp_table("Ops") == set(ops.OP_NAMES)
    assert csharp_table("Kinds") == set(ops.FACT_KINDS)


def test_request_is_data_of_the_entry_function() -> None:
    assert re.search(r"invoke-expression|\biex\b", AGENT, re.IGNORECASE) is None
    data = AGENT.encode("utf-8")
    entry = text(functions()["Invoke-PushinstallOp"], data)
    assert "ValueFromPipeline = $true" in entry and "[string]$Request" in entry
    assert "[Pushinstall.Agent.Core]::Invoke($Request)" in entry
    assert "Convert.FromBase64String(encoded.Trim())" in CORE
    # the one place source becomes code is the documented `script` escape hatch
    creators = [
        name for name, node in functions().items()
        if "[scriptblock]::create" in text(node, data).lower()
    ]
    assert creators == ["Invoke-PiScript"]
    assert AGENT.lower().count("[scriptblock]::create") == 1


def test_the_stdin_loop_reads_requests_as_data() -> None:
    """WinRS/SSH: the loop takes each request line with ReadLine and hands the string to the
    core; nothing read from stdin can become code."""
    data = AGENT.encode("utf-8")
    loop = text(functions()["Invoke-PushinstallLoop"], data)
    assert "$line = [Console]::In.ReadLine()" in loop
    assert "[Pushinstall.Agent.Core]::Invoke($line)" in loop
    assert "(Get-PushinstallKey)" in loop          # the key line comes first
    assert "$line" not in loop.replace("$line = [Console]::In.ReadLine()", "").replace(
        "[Pushinstall.Agent.Core]::Invoke($line)", "").replace(
        "[string]::IsNullOrEmpty($line)", "")


def test_regression_no_convertfrom_json_fallback() -> None:
    """agent.ps1 fell back to ConvertFrom-Json, which needs the assembly it falls back from:
    the core decodes with JavaScriptSerializer only."""
    assert "convertfrom-json" not in AGENT.lower()
    assert "new JavaScriptSerializer()" in CORE


def test_agent_sets_preferences_and_answer_sentinel() -> None:
    head = SHIM.split("function ", 1)[0]
    assert "$ErrorActionPreference = 'Stop'" in head
    assert "$ProgressPreference = 'SilentlyContinue'" in head
    assert f'Sentinel = "{ops.SENTINEL}"' in CORE


def test_every_op_handler_is_guarded_by_try_catch() -> None:
    """Handlers run through Core.Handle, whose catch turns any error into an answer."""
    handle = CORE[CORE.index("public static Dictionary<string, object> Handle("):]
    handle = handle[:handle.index("private static object Batch(")]
    assert "catch (Exception error)" in handle and "return ErrorAnswer(error);" in handle


def test_argument_quoting_rules_match_python() -> None:
    """The core's quoting names the same trigger characters as winargv.py."""
    assert "QuoteTriggers = { ' ', '\\t', '\\n', '\\v', '\"' }" in CORE
    assert "2 * backslashes + 1 : backslashes" in CORE and "2 * backslashes);" in CORE


def test_no_contains_method_on_dictionaries() -> None:
    """JSON objects arrive as Dictionary[string,object], whose IDictionary.Contains is an
    explicit interface member Windows PowerShell cannot call: use ContainsKey."""
    tree, data = parse(AGENT)
    calls = [
        node.start_point[0] + 1
        for node in walk(tree.root_node)
        if node.type == "invocation_expression"
        and any(c.type == "member_name" and text(c, data) == "Contains" for c in node.children)
    ]
    assert calls == []


BOOTSTRAP = bootstrap.script()


def test_bootstrap_parses_and_is_powershell_3_code() -> None:
    tree, _ = parse(BOOTSTRAP)
    assert not tree.root_node.has_error
    assert [n for n in walk(tree.root_node) if n.type == "ERROR" or n.is_missing] == []
    assert lint(BOOTSTRAP) == []


def test_bootstrap_takes_its_values_as_parameters_and_checks_the_hash_first() -> None:
    """Data is never code: the hash, the packed agent and the request are parameters; the one
    script block it makes is the agent's text, after its sha256 was compared."""
    assert BOOTSTRAP.startswith("param([string]$Hash, [byte[]]$Agent, [string]$Request); ")
    assert BOOTSTRAP.count("\n") == 1          # one line: PSRP sends a newline as _x000A_
    assert BOOTSTRAP.lower().count("[scriptblock]::create") == 1
    checked = BOOTSTRAP.index("-ne $Hash")
    assert checked < BOOTSTRAP.lower().index("[scriptblock]::create")
    assert "SHA256CryptoServiceProvider" in BOOTSTRAP      # SHA256Managed fails under FIPS
    assert f"'{bootstrap.MISSING}'" in BOOTSTRAP
    assert len(BOOTSTRAP) < 1100                            # it is sent on every run

def test_the_push_receiver_parses_is_powershell_3_and_fits_a_command_line() -> None:
    """receiver.ps1 goes as `-EncodedCommand`: parsed and linted like the agent, and the
    whole WinRS command line stays under cmd.exe's 8191 characters."""
    script = receiver.receiver_script()
    tree, _ = parse(script)
    assert not tree.root_node.has_error
    assert lint(script) == []
    assert len(receiver.command_line()) < 8191
    assert "OpenStandardInput" in script and "[Pushinstall.Agent.Core]::Receive(" in script
    decoded = base64.b64decode(receiver.arguments()[-1]).decode("utf-16-le")
    assert decoded == script
