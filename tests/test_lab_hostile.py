"""Hostile values through every op arrive as data: the lab host's registry, files, services and
answers hold exactly the strings that were sent, and nothing was interpreted on the way."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest
from kit import call, connect, fact

from pushinstall.lab.transport import LabTransport
from pushinstall.remote import ops
from pushinstall.remote.winargv import windows_argv_split

HOSTILE = [
    "'; Remove-Item C:\\ -Recurse #",
    "$(Stop-Computer -Force)",
    "`whoami` `$env:COMPUTERNAME",
    "say \"hi\" 'there' \\\"",
    "line1\nline2\r\nline3",
    "Grüße 日本語 ✓ \u2028 end",
    "trailing backslash \\",
    "%PATH% ^& | calc.exe < > ;",
    "",
]
# the same spirit, minus what Windows forbids in a file or service name (\ / : * ? " < > |
# and control characters)
NAME_SAFE = [
    "'; Remove-Item -Recurse #",
    "$(Stop-Computer -Force)",
    "`whoami` `$env",
    "it's & calc ; del",
    "Grüße 日本語 ✓",
    "%PATH% ^& @{a=1}",
]


@pytest.fixture
def transport() -> LabTransport:
    return connect("hostile01")


@pytest.mark.parametrize("value", HOSTILE)
def test_registry_names_and_values(transport: LabTransport, value: str) -> None:
    key = f"HKLM:\\SOFTWARE\\Pushinstall\\{value}" if value else "HKLM:\\SOFTWARE\\Pushinstall"
    assert call(transport, "set_registry", key=key, name=value, value=value, type="String")[
        "changed"]
    call(transport, "set_registry", key=key, name=value + "#m", value=[value, value],
        type="MultiString")
    assert fact(transport, kind="registry", key=key, name=value) == {
        "key_exists": True, "exists": True, "value": value, "type": "String"}
    assert fact(transport, kind="registry", key=key, name=value + "#m")["value"] == [value] * 2
    stored = transport.lab.state.registry.get(key, value)
    assert stored is not None and stored["name"] == value and stored["value"] == value


@pytest.mark.parametrize("value", HOSTILE)
def test_secret_and_pushed_file_contents(transport: LabTransport, value: str,
                                         tmp_path: Path) -> None:
    call(transport, "write_secret", path="C:\\Temp\\secret.txt", content=value)
    assert transport.lab.file_content("C:\\Temp\\secret.txt") == value.encode("utf-8")
    local = tmp_path / "payload.txt"
    local.write_bytes(value.encode("utf-8"))
    sha = hashlib.sha256(local.read_bytes()).hexdigest()
    transport.put_file(local, "C:\\Temp\\payload.txt", sha)
    assert transport.lab.file_content("C:\\Temp\\payload.txt") == value.encode("utf-8")


@pytest.mark.parametrize("value", NAME_SAFE)
def test_file_and_directory_names(transport: LabTransport, value: str, tmp_path: Path) -> None:
    directory = f"C:\\Temp\\{value}"
    assert call(transport, "ensure_directory", path=directory) == {"changed": True}
    local = tmp_path / "x.bin"
    local.write_bytes(b"x")
    path = f"{directory}\\{value}.txt"
    transport.put_file(local, path, hashlib.sha256(b"x").hexdigest())
    call(transport, "download", source="\\\\labshare\\asr\\WindowsAzureVmAgent.msi",
        destination=f"{directory}\\{value}.msi", run_as="system")
    assert fact(transport, kind="file", path=path)["size"] == 1
    names = {e["path"] for e in transport.lab.state.fs.files.values()}
    assert {path, f"{directory}\\{value}.msi"} <= names
    assert call(transport, "remove_file", path=path) == {"removed": True}


def test_archive_entry_names(transport: LabTransport, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for value in NAME_SAFE:
            archive.writestr(f"{value}/{value}.txt", value)
    local = tmp_path / "hostile.zip"
    local.write_bytes(buffer.getvalue())
    transport.put_file(local, "C:\\Temp\\hostile.zip", hashlib.sha256(local.read_bytes())
                       .hexdigest())
    call(transport, "expand_archive", path="C:\\Temp\\hostile.zip", destination="C:\\Temp\\z")
    for value in NAME_SAFE:
        content = transport.lab.file_content(f"C:\\Temp\\z\\{value}\\{value}.txt")
        assert content == value.encode("utf-8")


def test_run_process_arguments_arrive_as_argv(transport: LabTransport) -> None:
    result = call(transport, "run_process", path="cmd.exe", arguments=["/c", "echo", *HOSTILE])
    assert windows_argv_split(result["command_line"])[1:] == ["/c", "echo", *HOSTILE]
    assert result["stdout_tail"] == [" ".join(HOSTILE)]


@pytest.mark.parametrize("value", NAME_SAFE)
def test_service_names(transport: LabTransport, value: str) -> None:
    missing = transport.call(ops.request("set_service", name=value, state="running"))
    assert missing["error"] == {"type": "NotFound", "message": f"no such service: {value}"}
    created = call(transport, "run_process", path="sc.exe", arguments=[
        "create", value, "binPath=", f"C:\\svc\\{value}.exe", "DisplayName=", value + " (x)"])
    assert created["exit_code"] == 0
    assert call(transport, "set_service", name=value + " (x)", state="running")["status"] == \
        "Running"
    service = fact(transport, kind="service", name=value)
    assert (service["name"], service["display_name"]) == (value, value + " (x)")


def test_script_parameters_and_the_rest(transport: LabTransport) -> None:
    parameters = {f"p{i}": value for i, value in enumerate(HOSTILE)}
    source = "\n".join(f"$Parameters['p{i}']" for i in range(len(HOSTILE)))
    assert call(transport, "script", source=source, parameters=parameters)["output"] == HOSTILE
    for value in HOSTILE:
        assert fact(transport, kind="product", name=value or "x")["installed"] is False
        tcp = fact(transport, kind="tcp", host=value or "x", port=443)
        assert tcp["reachable"] is False and (value or "x") in tcp["error"]
        download = transport.call(ops.request("download", source=value or "x",
                                              destination="C:\\Temp\\d.bin"))
        assert download["ok"] is False
    answer = call(transport, "reboot", reason=HOSTILE[0])
    assert set(answer) == {"boot_time_before"}


def test_illegal_path_characters_fail_cleanly(transport: LabTransport) -> None:
    for value in ("C:\\Temp\\a\nb", "C:\\Temp\\a\"b", "C:\\Temp\\a:b", "C:\\Temp\\a|b"):
        answer = transport.call(ops.request("ensure_directory", path=value))
        assert answer["ok"] is False and answer["error"]["type"] == "Exception"
