"""Every op of the agent (the C# core behind the agent.ps1 shim) against a real Windows host
over PSRP (pypsrp), the way the psrp transport talks to it: the agent defined once, its session
key fetched, each request the -Request parameter of Invoke-PushinstallOp, secrets sealed.

Skipped unless PUSHINSTALL_TEST_HOST, PUSHINSTALL_TEST_USER and PUSHINSTALL_TEST_PASSWORD are
set: no Windows machine exists where CI runs, and PowerShell semantics (registry views, ACLs,
the service control manager, CreateProcess quoting) cannot be faked honestly. Meant for
Server 2012 R2 .. 2025 with an administrator account. Optional:

- PUSHINSTALL_TEST_PORT (default 5986), PUSHINSTALL_TEST_SSL (default 1),
  PUSHINSTALL_TEST_CERT_VALIDATION (default 1; 0 for a self-signed lab box),
  PUSHINSTALL_TEST_AUTH (default negotiate)
- PUSHINSTALL_TEST_DOWNLOAD_URL and PUSHINSTALL_TEST_DOWNLOAD_SHA256: an HTTP(S) file the
  target can reach, for the HTTP download test
- PUSHINSTALL_TEST_ALLOW_REBOOT=1: schedule a reboot 10 minutes out and cancel it at once
  (also over an already scheduled shutdown: exit 1190 replaced by ours, then cancelled)
- PUSHINSTALL_TEST_SSH_PORT: also run the stdin-loop test over SSH (Windows OpenSSH, the
  same user and password); the WinRS one runs over the PSRP settings' WinRM listener
- PUSHINSTALL_TEST_ALLOW_SEEDING=1: raise each registry pending-reboot signal the core reads
  (UpdateExeVolatile, Netlogon AvoidSpnSet, an orphan InDskFlt.sys) and remove it again

Everything happens under a fresh directory in the target's %TEMP%, a registry key under
HKLM\\SOFTWARE\\PushinstallTest-*, and a throwaway service; all are removed at the end.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import time
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest

from pushinstall.errors import RemoteOpFailed
from pushinstall.remote import bootstrap, modules, ops, sealing

HOST = os.environ.get("PUSHINSTALL_TEST_HOST")
USER = os.environ.get("PUSHINSTALL_TEST_USER")
PASSWORD = os.environ.get("PUSHINSTALL_TEST_PASSWORD")

pytestmark = pytest.mark.skipif(
    not (HOST and USER and PASSWORD),
    reason="needs a real Windows host: set PUSHINSTALL_TEST_HOST, _USER and _PASSWORD",
)

UNINSTALL = "HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall"


class Agent:
    """One PSRP runspace pool with agent.ps1 defined once; one pipeline per request."""

    def __init__(self) -> None:
        from pypsrp.powershell import PowerShell, RunspacePool
        from pypsrp.wsman import WSMan

        self._powershell = PowerShell
        wsman = WSMan(
            str(HOST),
            port=int(os.environ.get("PUSHINSTALL_TEST_PORT", "5986")),
            username=USER,
            password=PASSWORD,
            ssl=os.environ.get("PUSHINSTALL_TEST_SSL", "1") == "1",
            cert_validation=os.environ.get("PUSHINSTALL_TEST_CERT_VALIDATION", "1") == "1",
            auth=os.environ.get("PUSHINSTALL_TEST_AUTH", "negotiate"),
            read_timeout=120,
            operation_timeout=60,
        )
        self.pool = RunspacePool(wsman)
        self.pool.open()
        started = time.monotonic()
        self._run(ops.agent_source())
        self.define_seconds = time.monotonic() - started     # Add-Type (csc) included
        self.key = sealing.public_key_of(self._run(sealing.KEY_FUNCTION, {}))
        assert self.key is not None
        # the ops that change a machine: their module, as a transport sends it (ops.md "Modules")
        assert self.answer(modules.load_request("changes"))["ok"]

    def _run(self, script: str, parameters: dict[str, str] | None = None) -> str:
        shell = self._powershell(self.pool)
        if parameters is None:
            shell.add_script(script)
        else:
            shell.add_cmdlet(script).add_parameters(parameters)
        output = shell.invoke()
        return "\n".join(str(item) for item in output)

    def answer(self, req: dict[str, Any]) -> dict[str, Any]:
        ops.validate_request(req)
        assert self.key is not None
        encoded = ops.encode_request(sealing.seal(req, self.key))
        return ops.decode_answer(self._run(ops.AGENT_FUNCTION, {"Request": encoded}), host=HOST)

    def call(self, op: str, **args: Any) -> Any:
        return ops.result_of(self.answer(ops.request(op, **args)), host=HOST)

    def fails(self, op: str, **args: Any) -> RemoteOpFailed:
        with pytest.raises(RemoteOpFailed) as caught:
            self.call(op, **args)
        return caught.value

    def fact(self, kind: str, **query: Any) -> dict[str, Any]:
        result = self.call("facts", queries=[{"id": "q", "kind": kind, **query}])
        fact: dict[str, Any] = result["q"]
        assert "error" not in fact, fact
        return fact

    def script(self, source: str, **parameters: Any) -> list[str]:
        result = self.call("script", source=source, parameters=parameters)
        assert result["success"], result["errors"]
        output: list[str] = result["output"]
        return output

    def close(self) -> None:
        self.pool.close()


@pytest.fixture(scope="module")
def agent() -> Iterator[Agent]:
    client = Agent()
    yield client
    client.close()


@pytest.fixture(scope="module")
def workdir(agent: Agent) -> Iterator[str]:
    [temp] = agent.script("[System.IO.Path]::GetTempPath()")
    path = temp.rstrip("\\") + "\\pushinstall-test-" + uuid.uuid4().hex[:8]
    assert agent.call("ensure_directory", path=path) == {"changed": True}
    yield path
    agent.script(
        "Remove-Item -LiteralPath $Parameters.path -Recurse -Force", path=path
    )


@pytest.fixture(scope="module")
def regkey(agent: Agent) -> Iterator[str]:
    key = "HKLM:\\SOFTWARE\\PushinstallTest-" + uuid.uuid4().hex[:8]
    yield key
    agent.script(
        "foreach ($v in @('Registry64', 'Registry32')) {"
        " $b = [Microsoft.Win32.RegistryKey]::OpenBaseKey('LocalMachine', $v);"
        " $b.DeleteSubKeyTree($Parameters.sub, $false); $b.Close() }",
        sub=key.split("\\", 1)[1],
    )


def push(agent: Agent, destination: str, data: bytes, chunk: int = 4096) -> dict[str, Any]:
    sha = hashlib.sha256(data).hexdigest()
    begin = agent.call("file_begin", destination=destination, size=len(data), sha256=sha)
    for offset in range(0, len(data), chunk):
        piece = base64.b64encode(data[offset:offset + chunk]).decode()
        agent.call("file_chunk", temp_path=begin["temp_path"], offset=offset, data=piece)
    result: dict[str, Any] = agent.call(
        "file_end", temp_path=begin["temp_path"], destination=destination, sha256=sha
    )
    return result


# ---------------------------------------------------------------- protocol


def test_unknown_op_and_bad_args_answer_structured_errors(agent: Agent) -> None:
    # requests the controller would never send: validate_request is bypassed on purpose
    answer = ops.decode_answer(agent._run(ops.invocation({"op": "format_disk", "args": {}})))
    assert answer["error"]["type"] == "UnknownOp"
    answer = ops.decode_answer(agent._run(ops.invocation({"op": "remove_file", "args": {}})))
    assert answer["error"]["type"] == "InvalidArgument"


def test_batch_answers_each_in_order(agent: Agent) -> None:
    reqs = [
        ops.request("facts", queries=[{"id": "os", "kind": "os"}]),
        ops.request("remove_file", path="C:\\Windows"),
        ops.request("facts", queries=[{"id": "d", "kind": "disk", "drive": "C:"}]),
    ]
    answers = agent.call("batch", requests=reqs)
    assert [a["ok"] for a in answers] == [True, False, True]
    assert answers[1]["error"]["type"] == "InvalidArgument"
    assert answers[2]["result"]["d"]["exists"] is True
    assert len(agent.call("batch", requests=[reqs[0]])) == 1
    assert agent.call("batch", requests=[]) == []


def test_non_ascii_and_quotes_travel_as_data(agent: Agent) -> None:
    nasty = "'; Remove-Item C:\\ -Recurse # \"$(whoami)\" — Ünïcode ✓"
    assert agent.script("$Parameters.v", v=nasty) == [nasty]


# ---------------------------------------------------------------- facts


def test_os_pending_reboot_disk_tcp(agent: Agent) -> None:
    result = agent.call(
        "facts",
        queries=[
            {"id": "os", "kind": "os"},
            {"id": "pr", "kind": "pending_reboot"},
            {"id": "c", "kind": "disk", "drive": "C:"},
            {"id": "none", "kind": "disk", "drive": "B:"},
            {"id": "winrm", "kind": "tcp", "host": "127.0.0.1",
             "port": int(os.environ.get("PUSHINSTALL_TEST_PORT", "5986"))},
            {"id": "closed", "kind": "tcp", "host": "127.0.0.1", "port": 1, "timeout_ms": 1000},
            {"id": "bad", "kind": "registry", "key": "NOPE:\\x"},
        ],
    )
    os_fact = result["os"]
    assert os_fact["version"].startswith(("6.2", "6.3", "10.0"))
    assert isinstance(os_fact["build"], int) and os_fact["build"] >= 9200
    assert int(os_fact["powershell_version"].split(".")[0]) >= 3
    assert os_fact["last_boot_time"].endswith("Z")
    assert os_fact["architecture"] in ("64-bit", "32-bit") and os_fact["boot_finished"] is True
    signals = result["pr"]["signals"]
    assert set(signals) == set(ops.PENDING_SIGNALS)
    assert result["pr"]["pending"] == any(signals.values())
    assert result["c"]["exists"] and 0 < result["c"]["free_bytes"] <= result["c"]["total_bytes"]
    assert result["none"]["exists"] is False
    assert result["winrm"]["reachable"] is True and result["winrm"]["error"] is None
    assert result["closed"]["reachable"] is False and result["closed"]["error"]
    assert result["bad"]["error"]["type"] == "InvalidArgument"


def test_service_fact(agent: Agent) -> None:
    winrm = agent.fact("service", name="WinRM")
    assert winrm["exists"] and winrm["status"] == "Running"
    assert winrm["start_mode"] in ops.START_MODES
    by_display = agent.fact("service", name=winrm["display_name"])
    assert by_display["name"] == "WinRM"
    assert agent.fact("service", name="NoSuchService*")["exists"] is False


# ---------------------------------------------------------------- registry and products


@pytest.mark.parametrize(
    ("name", "kind", "value"),
    [
        ("S", "String", "text ü"),
        ("E", "ExpandString", "%SystemRoot%\\x"),
        ("D", "DWord", 4294967295),
        ("Q", "QWord", 2**63 + 5),
        ("M", "MultiString", ["a", "", "c d"]),
        ("B", "Binary", base64.b64encode(b"\x00\x01\xff").decode()),
        ("", "String", "the default value"),
    ],
)
@pytest.mark.parametrize("view", ["64", "32"])
def test_set_registry_then_fact(
    agent: Agent, regkey: str, name: str, kind: str, value: Any, view: str
) -> None:
    args = {"key": regkey, "name": name, "value": value, "type": kind, "view": view}
    assert agent.call("set_registry", **args) == {"changed": True}
    assert agent.call("set_registry", **args) == {"changed": False}
    fact = agent.fact("registry", key=regkey, name=name, view=view)
    assert fact == {"key_exists": True, "exists": True, "value": value, "type": kind}
    missing = agent.fact("registry", key=regkey, name="absent", view=view)
    assert missing["key_exists"] and not missing["exists"]


def test_registry_views_are_separate(agent: Agent, regkey: str) -> None:
    agent.call("set_registry", key=regkey + "\\Only32", name="x", value=1, type="DWord", view="32")
    assert agent.fact("registry", key=regkey + "\\Only32", name="x", view="32")["exists"]
    assert not agent.fact("registry", key=regkey + "\\Only32", name="x", view="64")["key_exists"]


def test_product_found_in_the_wow6432_view(agent: Agent) -> None:
    guid = "{" + str(uuid.uuid4()).upper() + "}"
    key = f"{UNINSTALL}\\{guid}"
    name = "Pushinstall Test Product " + guid
    try:
        for value_name, value in (("DisplayName", name), ("DisplayVersion", "9.55.1.0"),
                                  ("InstallLocation", "C:\\PT")):
            agent.call("set_registry", key=key, name=value_name, value=value, type="String",
                       view="32")
        for query in ({"product_id": guid.lower()}, {"name": name}):
            fact = agent.fact("product", **query)
            assert fact == {"installed": True, "product_id": guid, "name": name,
                            "version": "9.55.1.0", "install_location": "C:\\PT", "view": "32"}
        assert agent.fact("product", name=name + " (not)")["installed"] is False
    finally:
        agent.script(
            "$b = [Microsoft.Win32.RegistryKey]::OpenBaseKey('LocalMachine', 'Registry32');"
            " $b.DeleteSubKeyTree($Parameters.sub, $false); $b.Close()",
            sub=key.split("\\", 1)[1],
        )


# ---------------------------------------------------------------- files


def test_push_file_fact_and_hash_mismatch(agent: Agent, workdir: str) -> None:
    data = os.urandom(10_000)
    path = workdir + "\\sub dir\\blob.bin"
    result = push(agent, path, data)
    assert result == {"changed": True, "sha256": hashlib.sha256(data).hexdigest(), "size": 10_000}
    assert push(agent, path, data)["changed"] is False
    fact = agent.fact("file", path=path)
    assert fact["exists"] and not fact["is_directory"]
    assert fact["sha256"] == result["sha256"] and fact["size"] == 10_000
    assert agent.fact("file", path=path, hash=False)["sha256"] is None
    assert agent.fact("file", path=workdir)["is_directory"] is True
    begin = agent.call("file_begin", destination=path, size=3, sha256="0" * 64)
    agent.call("file_chunk", temp_path=begin["temp_path"], offset=0, data="YWJj")
    error = agent.fails("file_end", temp_path=begin["temp_path"], destination=path,
                        sha256="0" * 64)
    assert error.error_type == "HashMismatch"
    assert agent.fact("file", path=begin["temp_path"])["exists"] is False
    assert agent.fact("file", path=path)["sha256"] == result["sha256"]


def test_file_begin_refuses_more_than_the_free_space(agent: Agent, workdir: str) -> None:
    error = agent.fails("file_begin", destination=workdir + "\\huge.bin", size=2**62,
                        sha256="0" * 64)
    assert error.error_type == "DiskFull"


def test_ensure_directory_and_remove_file(agent: Agent, workdir: str) -> None:
    path = workdir + "\\a\\b\\c"
    assert agent.call("ensure_directory", path=path) == {"changed": True}
    assert agent.call("ensure_directory", path=path) == {"changed": False}
    push(agent, path + "\\f.txt", b"x")
    assert agent.call("remove_file", path=path + "\\f.txt") == {"removed": True}
    assert agent.call("remove_file", path=path + "\\f.txt") == {"removed": False}


def test_download_from_a_path_and_a_unc_share_with_a_credential(agent: Agent,
                                                                workdir: str) -> None:
    data = b"installer bytes " * 1000
    sha = hashlib.sha256(data).hexdigest()
    source = workdir + "\\source.bin"
    push(agent, source, data)
    local = agent.call("download", source=source, destination=workdir + "\\dl\\a.bin", sha256=sha)
    assert local == {"changed": True, "sha256": sha, "size": len(data)}
    again = agent.call("download", source=source, destination=workdir + "\\dl\\a.bin", sha256=sha)
    assert again["changed"] is False
    wrong = agent.fails("download", source=source, destination=workdir + "\\dl\\b.bin",
                        sha256="1" * 64)
    assert wrong.error_type == "HashMismatch"
    assert agent.fact("file", path=workdir + "\\dl\\b.bin")["exists"] is False
    # the double-hop path: the share is connected with an explicit credential
    unc = "\\\\127.0.0.1\\" + source.replace(":", "$", 1)
    shared = agent.call("download", source=unc, destination=workdir + "\\dl\\c.bin", sha256=sha,
                        credential={"username": USER, "password": PASSWORD})
    assert shared["sha256"] == sha
    missing = agent.fails("download", source=workdir + "\\nope.bin",
                          destination=workdir + "\\dl\\d.bin")
    assert missing.error_type == "NotFound"


LEFTOVERS = (
    "$s = New-Object -ComObject Schedule.Service; $s.Connect();"
    " $tasks = @($s.GetFolder('\\').GetTasks(1) |"
    " Where-Object { $_.Name -like 'pushinstall-download-*' });"
    " $dirs = @(Get-ChildItem -LiteralPath $env:ProgramData -Filter 'pushinstall-download-*');"
    " [string]($tasks.Count + $dirs.Count)"
)


def test_download_as_system_through_a_one_shot_task(agent: Agent, workdir: str) -> None:
    """run_as: system: the core compiles its worker, registers a SYSTEM task through the Task
    Scheduler COM API, runs it, reads its result file and deletes task and directory. Over
    the loopback admin share the machine account may or may not be let in: either the copy
    or AccessDenied naming HOST$ is the documented answer; nothing may be left behind."""
    data = b"bundle as system " * 500
    sha = hashlib.sha256(data).hexdigest()
    source = workdir + "\\system-source.bin"
    push(agent, source, data)
    unc = "\\\\127.0.0.1\\" + source.replace(":", "$", 1)
    answer = agent.answer(ops.request("download", source=unc, destination=workdir + "\\sys.bin",
                                      sha256=sha, run_as="system", timeout_s=300))
    if answer["ok"]:
        assert answer["result"] == {"changed": True, "sha256": sha, "size": len(data)}
    else:
        assert answer["error"]["type"] == "AccessDenied", answer
        assert answer["error"]["message"].endswith("$)")
    missing = agent.fails("download", source="\\\\127.0.0.1\\nosuchshare\\x.bin",
                          destination=workdir + "\\sys2.bin", run_as="system", timeout_s=120)
    assert missing.error_type in ("NotFound", "AccessDenied")
    assert agent.script(LEFTOVERS) == ["0"]


@pytest.mark.skipif(not os.environ.get("PUSHINSTALL_TEST_DOWNLOAD_URL"),
                    reason="set PUSHINSTALL_TEST_DOWNLOAD_URL and _SHA256")
def test_download_over_http(agent: Agent, workdir: str) -> None:
    url = os.environ["PUSHINSTALL_TEST_DOWNLOAD_URL"]
    sha = os.environ["PUSHINSTALL_TEST_DOWNLOAD_SHA256"].lower()
    result = agent.call("download", source=url, destination=workdir + "\\http.bin", sha256=sha)
    assert result["sha256"] == sha
    missing = agent.fails("download", source=url + ".does-not-exist",
                          destination=workdir + "\\http404.bin")
    assert missing.error_type == "DownloadFailed" and "404" in missing.message


def test_expand_archive_once(agent: Agent, workdir: str) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("setup/UnifiedAgent.exe", b"MZ fake")
        archive.writestr("setup/readme.txt", "hello")
        archive.writestr("empty/", "")
    push(agent, workdir + "\\ua.zip", buffer.getvalue())
    target = workdir + "\\ua"
    first = agent.call("expand_archive", path=workdir + "\\ua.zip", destination=target)
    assert first == {"changed": True, "files": 2}
    readme = agent.fact("file", path=target + "\\setup\\readme.txt")
    assert readme["sha256"] == hashlib.sha256(b"hello").hexdigest()
    assert agent.fact("file", path=target + "\\empty")["is_directory"]
    second = agent.call("expand_archive", path=workdir + "\\ua.zip", destination=target)
    assert second == {"changed": False, "files": 0}


def test_write_secret_acl_and_no_echo(agent: Agent, workdir: str) -> None:
    path = workdir + "\\passphrase.txt"
    secret = "Pa$$phrase 'with' \"quotes\" " + uuid.uuid4().hex
    answer = agent.answer(ops.request("write_secret", path=path, content=secret))
    assert answer == {"ok": True, "result": {"changed": True}}
    assert agent.call("write_secret", path=path, content=secret) == {"changed": False}
    assert agent.fact("file", path=path)["sha256"] == hashlib.sha256(secret.encode()).hexdigest()
    acl = agent.script(
        "$acl = Get-Acl -LiteralPath $Parameters.path;"
        " [string]$acl.AreAccessRulesProtected;"
        " $acl.GetAccessRules($true, $true, [System.Security.Principal.SecurityIdentifier])"
        " | ForEach-Object { $_.IdentityReference.Value } | Sort-Object",
        path=path,
    )
    assert acl == ["True", "S-1-5-18", "S-1-5-32-544"]
    assert agent.call("write_secret", path=path, content=secret + "2") == {"changed": True}


# ---------------------------------------------------------------- processes

ARGV_ECHO = r"""
using System;
public static class ArgvEcho {
    public static int Main(string[] args) {
        foreach (string a in args) {
            Console.WriteLine(Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(a)));
        }
        return 42;
    }
}
"""


def test_run_process_passes_each_argument_intact(agent: Agent, workdir: str) -> None:
    exe = workdir + "\\argv echo.exe"
    agent.script(
        "Add-Type -TypeDefinition $Parameters.code -OutputAssembly $Parameters.exe"
        " -OutputType ConsoleApplication",
        code=ARGV_ECHO, exe=exe,
    )
    args = ["plain", "", "two words", 'say "hi"', "C:\\Program Files\\x\\", "a\\\\b",
            'back\\"quote', "\\", "tab\there", "'; Remove-Item C:\\ #", "ünï"]
    result = agent.call("run_process", path=exe, arguments=args, working_directory=workdir)
    assert result["exit_code"] == 42 and result["timed_out"] is False
    assert result["command_line"] == ops.windows_command_line(exe, args)
    decoded = [base64.b64decode(line).decode() for line in result["stdout_tail"]]
    assert decoded == args


def test_run_process_chatty_timeout_and_missing(agent: Agent) -> None:
    chatty = agent.call(
        "run_process",
        path="powershell.exe",
        arguments=["-NoProfile", "-Command",
                   "1..20000 | ForEach-Object { 'line ' + $_ }; "
                   "[Console]::Error.WriteLine('to stderr'); exit 3010"],
        tail_lines=3,
    )
    assert chatty["exit_code"] == 3010
    assert chatty["stdout_tail"] == ["line 19998", "line 19999", "line 20000"]
    assert chatty["stderr_tail"] == ["to stderr"]
    slow = agent.call("run_process", path="powershell.exe",
                      arguments=["-NoProfile", "-Command", "Start-Sleep 60"], timeout_s=2)
    assert slow["timed_out"] is True and slow["duration_s"] < 30
    missing = agent.fails("run_process", path="C:\\nope\\UnifiedAgent.exe")
    assert missing.error_type == "NotFound"


# ---------------------------------------------------------------- services, reboot, script


@pytest.fixture
def dummy_service(agent: Agent) -> Iterator[str]:
    name = "PushinstallTest" + uuid.uuid4().hex[:6]
    create = agent.call("run_process", path="sc.exe",
                        arguments=["create", name, "binPath=", "C:\\nope\\svc.exe",
                                   "start=", "demand"])
    assert create["exit_code"] == 0, create
    yield name
    agent.call("run_process", path="sc.exe", arguments=["delete", name])


def test_set_service_start_modes_and_failure(agent: Agent, dummy_service: str) -> None:
    name = dummy_service
    assert agent.fact("service", name=name)["start_mode"] == "Manual"
    for mode in ("AutomaticDelayed", "Automatic", "Disabled", "Manual"):
        result = agent.call("set_service", name=name, start_mode=mode)
        assert result["changed"] and result["start_mode"] == mode
        assert agent.fact("service", name=name)["start_mode"] == mode
    unchanged = agent.call("set_service", name=name, start_mode="Manual", state="stopped")
    assert unchanged == {"changed": False, "status": "Stopped", "start_mode": "Manual"}
    error = agent.fails("set_service", name=name, state="running", timeout_s=10)
    assert error.error_type == "ServiceFailed" and name in error.message
    assert agent.fails("set_service", name="NoSuchSvc", state="running").error_type == "NotFound"


@pytest.mark.skipif(os.environ.get("PUSHINSTALL_TEST_ALLOW_REBOOT") != "1",
                    reason="set PUSHINSTALL_TEST_ALLOW_REBOOT=1 (schedules and cancels)")
def test_reboot_is_scheduled_and_answers_the_boot_time(agent: Agent) -> None:
    boot = agent.fact("os")["last_boot_time"]
    result = agent.call("reboot", delay_s=600, reason="pushinstall test, cancelled")
    cancel = agent.call("run_process", path="shutdown.exe", arguments=["/a"])
    assert cancel["exit_code"] == 0, "cancel failed: the host restarts in 10 minutes"
    assert result == {"boot_time_before": boot}


def test_script_output_errors_and_parameters(agent: Agent) -> None:
    result = agent.call("script", source="param($p) $p.n * 2; $Parameters.s",
                        parameters={"n": 21, "s": "ok"})
    assert result == {"output": ["42", "ok"], "errors": [], "success": True}
    failed = agent.call("script", source="'before'; throw 'boom'")
    assert failed["output"] == ["before"] and failed["success"] is False
    assert failed["errors"] == ["boom"]


def test_core_is_compiled_once_per_session(agent: Agent) -> None:
    again = time.monotonic()
    agent._run(ops.agent_source())          # the type is loaded: no second Add-Type
    assert time.monotonic() - again < max(1.0, agent.define_seconds)
    assert agent.call("facts", queries=[]) == {}


def test_nested_lists_reach_the_core_whole(agent: Agent) -> None:
    """The defect that broke every host: facts saw ONE query, run_process ONE argument."""
    result = agent.call("facts", queries=[{"id": "a", "kind": "disk", "drive": "C:"},
                                          {"id": "b", "kind": "disk", "drive": "B:"}])
    assert sorted(result) == ["a", "b"]


def test_child_output_is_read_as_utf8(agent: Agent) -> None:
    line = "Fortschritt: 50 % Überprüfung 名前"
    result = agent.call("run_process", path="powershell.exe", arguments=[
        "-NoProfile", "-Command",
        "[Console]::OutputEncoding = [Text.Encoding]::UTF8; [Console]::Out.WriteLine($args[0])",
        line])
    assert result["stdout_tail"] == [line]


def test_sealed_secret_is_written_in_plain(agent: Agent, workdir: str) -> None:
    path = workdir + "\\sealed.txt"
    assert agent.call("write_secret", path=path, content="sealed-ü") == {"changed": True}
    assert agent.script("[IO.File]::ReadAllText($Parameters.p)", p=path) == ["sealed-ü"]


def test_delayed_auto_is_what_the_service_manager_reports(agent: Agent,
                                                           dummy_service: str) -> None:
    agent.call("set_service", name=dummy_service, start_mode="AutomaticDelayed")
    query = agent.call("run_process", path="sc.exe", arguments=["qc", dummy_service])
    assert any("DELAYED" in line for line in query["stdout_tail"]), query
    agent.call("set_service", name=dummy_service, start_mode="Automatic")
    query = agent.call("run_process", path="sc.exe", arguments=["qc", dummy_service])
    assert not any("DELAYED" in line for line in query["stdout_tail"]), query
    assert agent.fact("service", name=dummy_service)["start_mode"] == "Automatic"


@pytest.mark.skipif(os.environ.get("PUSHINSTALL_TEST_ALLOW_SEEDING") != "1",
                    reason="set PUSHINSTALL_TEST_ALLOW_SEEDING=1 (raises and clears signals)")
def test_each_pending_reboot_signal(agent: Agent) -> None:
    seeds = {
        "update_exe_volatile": ("HKLM:\\SOFTWARE\\Microsoft\\Updates", "UpdateExeVolatile"),
        "domain_join": ("HKLM:\\SYSTEM\\CurrentControlSet\\Services\\Netlogon", "AvoidSpnSet"),
    }
    for signal, (key, name) in seeds.items():
        assert agent.fact("pending_reboot")["signals"][signal] is False, "already pending"
        agent.call("set_registry", key=key, name=name, value=1, type="DWord")
        try:
            assert agent.fact("pending_reboot")["signals"][signal] is True
        finally:
            agent.script("Remove-ItemProperty -LiteralPath $Parameters.k -Name $Parameters.n",
                         k=key, n=name)
    driver = "C:\\Windows\\System32\\drivers\\InDskFlt.sys"
    if agent.fact("file", path=driver)["exists"]:
        pytest.skip("ASR's driver is installed here")
    agent.call("write_secret", path=driver, content="not a driver")
    try:
        assert agent.fact("pending_reboot")["signals"]["asr_driver_uninstalled"] is True
    finally:
        agent.call("remove_file", path=driver)
    sccm = agent.fact("pending_reboot", sccm=True)["signals"]
    assert isinstance(sccm["sccm_client"], bool)


@pytest.mark.skipif(os.environ.get("PUSHINSTALL_TEST_ALLOW_REBOOT") != "1",
                    reason="set PUSHINSTALL_TEST_ALLOW_REBOOT=1 (schedules and cancels)")
def test_reboot_replaces_a_scheduled_shutdown_and_clears_boot_finished(agent: Agent) -> None:
    logon = "HKLM:\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon\\AutoLogonChecked"
    pending = agent.call("run_process", path="shutdown.exe",
                         arguments=["/s", "/t", "3000", "/c", "pushinstall test"])
    assert pending["exit_code"] == 0
    try:
        agent.call("reboot", delay_s=600, reason="pushinstall test, cancelled")
        assert agent.fact("os")["boot_finished"] is False   # LogonUI recreates it at boot
    finally:
        cancel = agent.call("run_process", path="shutdown.exe", arguments=["/a"])
        agent.script("New-Item -Path $Parameters.k -Force | Out-Null", k=logon)
    assert cancel["exit_code"] == 0, "cancel failed: the host restarts in 10 minutes"
    assert agent.fact("os")["boot_finished"] is True


# ---------------------------------------------------------------- the stdin loop (WinRS, SSH)


def _stdin_transport(kind: str) -> Any:
    from pushinstall.model import Connection, Host
    from pushinstall.secret import Secret
    from pushinstall.transports.ssh import SSHTransport
    from pushinstall.transports.winrm import WinRMTransport

    validate = os.environ.get("PUSHINSTALL_TEST_CERT_VALIDATION", "1") == "1"
    if kind == "ssh":
        connection = Connection(transport="ssh", address=str(HOST),
                                port=int(os.environ["PUSHINSTALL_TEST_SSH_PORT"]),
                                username=USER, password=Secret(str(PASSWORD)),
                                host_key_checking=validate)
        return SSHTransport(Host(str(HOST), connection=connection))
    connection = Connection(transport="winrm", address=str(HOST),
                            port=int(os.environ.get("PUSHINSTALL_TEST_PORT", "5986")),
                            auth=os.environ.get("PUSHINSTALL_TEST_AUTH", "negotiate"),
                            tls=os.environ.get("PUSHINSTALL_TEST_SSL", "1") == "1",
                            cert_validation=validate, username=USER,
                            password=Secret(str(PASSWORD)))
    return WinRMTransport(Host(str(HOST), connection=connection))


@pytest.mark.parametrize("kind", ["winrm", "ssh"])
def test_one_agent_process_reads_request_lines_as_data(kind: str, workdir: str) -> None:
    """Windows PowerShell's `-Command -` host and the agent's [Console]::In.ReadLine() share
    stdin: several requests on one process, a sealed secret, a hostile value, all answered."""
    if kind == "ssh" and not os.environ.get("PUSHINSTALL_TEST_SSH_PORT"):
        pytest.skip("set PUSHINSTALL_TEST_SSH_PORT for the SSH leg")
    transport = _stdin_transport(kind)
    transport.open()
    try:
        path = workdir + "\\" + kind + "-secret.txt"
        hostile = "'; Remove-Item C:\\ -Recurse #"
        written = transport.call(ops.request("write_secret", path=path, content="pässwörd"))
        assert written == {"ok": True, "result": {"changed": True}}
        first = transport.call(ops.request("facts", queries=[
            {"id": "f", "kind": "file", "path": path},
            {"id": "h", "kind": "registry", "key": "HKLM:\\SOFTWARE\\" + hostile}]))
        assert first["ok"] and first["result"]["f"]["exists"] is True
        assert first["result"]["h"]["key_exists"] is False
        for _ in range(3):                                  # the same process answers on
            assert transport.call(ops.request("facts", queries=[]))["ok"] is True
        pid = transport.call(ops.request("script", source="$PID"))["result"]["output"]
        assert transport.call(ops.request("script", source="$PID"))["result"]["output"] == pid
    finally:
        transport.close()


def _bootstrap_session(with_agent: bool) -> tuple[str, float]:
    """A fresh pool running the bootstrap with a gather, as the psrp transport's first call."""
    from pypsrp.powershell import PowerShell, RunspacePool
    from pypsrp.wsman import WSMan

    pool = RunspacePool(WSMan(
        str(HOST), port=int(os.environ.get("PUSHINSTALL_TEST_PORT", "5986")), username=USER,
        password=PASSWORD, ssl=os.environ.get("PUSHINSTALL_TEST_SSL", "1") == "1",
        cert_validation=os.environ.get("PUSHINSTALL_TEST_CERT_VALIDATION", "1") == "1",
        auth=os.environ.get("PUSHINSTALL_TEST_AUTH", "negotiate"), read_timeout=120,
        operation_timeout=60))
    pool.open()
    try:
        gather = ops.encode_request(ops.request("facts", queries=[{"id": "os", "kind": "os"}]))
        shell = PowerShell(pool)
        shell.add_script(bootstrap.script()).add_parameters(bootstrap.parameters(with_agent,
                                                                                 gather))
        started = time.monotonic()
        output = "\n".join(str(item) for item in shell.invoke())
        return output, time.monotonic() - started
    finally:
        pool.close()


def test_bootstrap_defines_from_the_sent_agent_then_from_the_cache(agent: Agent) -> None:
    """Issue 12/14 on Windows: the sent agent is cached under its sha256 with the compiled core
    beside it; a later session defines it from the hash alone and compiles nothing."""
    sent, with_compile = _bootstrap_session(True)
    assert sealing.public_key_of(sent) is not None
    assert ops.decode_answer(sent)["ok"] is True
    cached, from_cache = _bootstrap_session(False)
    assert not bootstrap.missing(cached)
    assert ops.decode_answer(cached)["ok"] is True
    copy = agent.fact("file", path=f"{bootstrap.CACHE_DIR}\\{bootstrap.agent_hash()}.ps1")
    assert copy["exists"] and copy["sha256"] == bootstrap.agent_hash()
    dlls = agent.script("@(Get-ChildItem -LiteralPath $Parameters.d -Filter '*.dll') | "
                        "ForEach-Object { $_.Name }", d=bootstrap.CACHE_DIR)
    assert len(dlls) >= 1
    acl = agent.script("(Get-Acl -LiteralPath $Parameters.d).Access | ForEach-Object { "
                       "$_.IdentityReference.Translate([Security.Principal.SecurityIdentifier])"
                       ".Value } | Sort-Object -Unique", d=bootstrap.CACHE_DIR)
    assert acl == ["S-1-5-18", "S-1-5-32-544"]
    print(f"define with csc {with_compile:.2f} s, from the cache {from_cache:.2f} s")

@pytest.mark.parametrize("kind", ["psrp", "winrm"])
def test_the_transports_push_stream_lands_with_its_sha256(agent: Agent, workdir: str,
                                                           kind: str, tmp_path: Any) -> None:
    """The product's put_file on a real host: receiver.ps1 under -EncodedCommand reads the raw
    bytes from stdin ([Console]::OpenStandardInput()) and the core writes them; file_end
    checks the sha256 (docs/ops.md, "file_chunk over a stream")."""
    from pushinstall.model import Connection, Host
    from pushinstall.secret import Secret
    from pushinstall.transports.psrp import PSRPTransport
    from pushinstall.transports.winrm import WinRMTransport

    connection = Connection(
        transport=kind, address=str(HOST), port=int(os.environ.get("PUSHINSTALL_TEST_PORT",
                                                                    "5986")),
        auth=os.environ.get("PUSHINSTALL_TEST_AUTH", "negotiate"),
        tls=os.environ.get("PUSHINSTALL_TEST_SSL", "1") == "1",
        cert_validation=os.environ.get("PUSHINSTALL_TEST_CERT_VALIDATION", "1") == "1",
        username=USER, password=Secret(str(PASSWORD)), read_timeout=120)
    host = Host(str(HOST), connection=connection)
    transport = PSRPTransport(host) if kind == "psrp" else WinRMTransport(host)
    local = tmp_path / "push.bin"
    local.write_bytes(os.urandom(5 * 1024 * 1024 + 3))
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    destination = workdir + f"\\pushed-{kind}.bin"
    transport.open()
    try:
        result = transport.put_file(local, destination, digest)
    finally:
        transport.close()
    assert result == {"changed": True, "sha256": digest, "size": 5 * 1024 * 1024 + 3}
    fact = agent.fact("file", path=destination)
    assert fact["sha256"] == digest
