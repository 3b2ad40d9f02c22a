"""The lab is held to the real implementation: the same request sequences go to a lab host and
to the agent's C# core under mono, and the answers are compared field by field.

Paths differ (the lab is a Windows file system, the core runs on this machine's), so file
sequences are written against a root that each side fills in; answer values that name a path
(`temp_path`) or a time (`modified`) are compared by presence, not value. Error answers are
compared by type: the lab words its messages after ops.validate_request.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from agent_host import AgentHost, SharedHost
from test_agent_ps1 import csharp_table

from pushinstall.lab import lab_host
from pushinstall.remote import ops

Sequence = Callable[[str], list[dict[str, Any]]]
UNSTABLE = {"temp_path", "modified", "elapsed_ms", "duration_s", "last_boot_time", "hostname",
            "caption", "version", "build", "powershell_version", "free_bytes", "total_bytes"}


def lab_answers(op: str) -> bool:
    """True when the lab knows `op` (it may still refuse the empty arguments)."""
    answer = lab_host("parity").handle({"op": op, "args": {}})
    return answer["ok"] or answer["error"]["type"] != "UnknownOp"


def lab_knows_fact(kind: str) -> bool:
    """True when the lab knows fact `kind` (it may still refuse the missing arguments)."""
    answer = lab_host("parity").handle(
        {"op": "facts", "args": {"queries": [{"id": "q", "kind": kind}]}})
    fact = answer["result"]["q"] if answer["ok"] else {"error": answer["error"]}
    return not ("error" in fact and "'kind' must be one of" in fact["error"]["message"])


def test_both_sides_answer_exactly_the_op_names() -> None:
    core = csharp_table("Ops")
    lab = {op for op in ops.OP_NAMES if lab_answers(op)}
    assert core == lab == set(ops.OP_NAMES)
    assert not lab_answers("format_disk")          # the check can fail


def test_both_sides_answer_exactly_the_fact_kinds() -> None:
    core = csharp_table("Kinds")
    lab = {kind for kind in ops.FACT_KINDS if lab_knows_fact(kind)}
    assert core == lab == set(ops.FACT_KINDS)
    assert not lab_knows_fact("bios_password")     # the check can fail


# ---------------------------------------------------------------- the sequences

KEY = "HKLM:\\SOFTWARE\\PushinstallParity"
UNINSTALL = "HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall"


def registry_sequence(root: str) -> list[dict[str, Any]]:
    values = [("S", "tëxt", "String"), ("E", "%SystemRoot%\\x", "ExpandString"),
              ("D", 4294967295, "DWord"), ("Q", 2**64 - 1, "QWord"),
              ("M", ["a", "ü"], "MultiString"), ("B", base64.b64encode(b"\0\xff").decode(),
                                                 "Binary")]
    seq = []
    for view in ("64", "32"):
        for name, value, kind in values:
            seq.append(ops.request("set_registry", key=KEY, name=name, value=value, type=kind,
                                   view=view))
            seq.append(ops.request("set_registry", key=KEY, name=name, value=value, type=kind,
                                   view=view))
    queries = [{"id": f"{view}-{name}", "kind": "registry", "key": KEY, "name": name,
                "view": view} for view in ("64", "32") for name, _, _ in values]
    queries.append({"id": "nokey", "kind": "registry", "key": KEY + "\\None"})
    queries.append({"id": "novalue", "kind": "registry", "key": KEY, "name": "none"})
    queries.append({"id": "badhive", "kind": "registry", "key": "HKXX:\\A"})
    seq.append(ops.request("facts", queries=queries))
    seq.append(ops.request("set_registry", key=KEY, name="S", value="other", type="String"))
    seq.append(ops.request("set_registry", key=KEY, name="S", value=1, type="DWord"))
    return seq


def product_sequence(root: str) -> list[dict[str, Any]]:
    entry = UNINSTALL + "\\{PARITY-0001}"
    return [
        ops.request("set_registry", key=entry, name="DisplayName", value="Parity Product",
                    type="String", view="32"),
        ops.request("set_registry", key=entry, name="DisplayVersion", value="1.2.3",
                    type="String", view="32"),
        ops.request("set_registry", key=UNINSTALL + "\\Parity64", name="DisplayName",
                    value="Parity 64", type="String"),
        ops.request("facts", queries=[
            {"id": "by_id", "kind": "product", "product_id": "{PARITY-0001}"},
            {"id": "by_name", "kind": "product", "name": "parity 64"},
            {"id": "none", "kind": "product", "name": "Nothing Such"},
        ]),
    ]


def pending_sequence(root: str) -> list[dict[str, Any]]:
    pending = {"id": "p", "kind": "pending_reboot"}
    seeds = [
        ("HKLM:\\SYSTEM\\CurrentControlSet\\Control\\Session Manager",
         "PendingFileRenameOperations", ["\\??\\C:\\x"], "MultiString"),
        ("HKLM:\\SOFTWARE\\Microsoft\\Updates", "UpdateExeVolatile", 1, "DWord"),
        ("HKLM:\\SYSTEM\\CurrentControlSet\\Services\\Netlogon", "AvoidSpnSet", 1, "DWord"),
        ("HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\WindowsUpdate\\Auto Update\\"
         "RebootRequired", "x", 1, "DWord"),
    ]
    seq = [ops.request("facts", queries=[pending, {**pending, "id": "s", "sccm": False}])]
    for key, name, value, kind in seeds:
        seq.append(ops.request("set_registry", key=key, name=name, value=value, type=kind))
        seq.append(ops.request("facts", queries=[pending]))
    return seq


def file_sequence(root: str) -> list[dict[str, Any]]:
    data = "parity ü".encode()
    digest = hashlib.sha256(data).hexdigest()
    dest = f"{root}{SEP[root]}sub{SEP[root]}file.txt"
    return [
        ops.request("ensure_directory", path=f"{root}{SEP[root]}sub"),
        ops.request("ensure_directory", path=f"{root}{SEP[root]}sub"),
        ops.request("file_begin", destination=dest, size=len(data), sha256=digest),
        ops.request("file_chunk", temp_path=dest + ".000000000000.pushinstall-part", offset=0,
                    data=base64.b64encode(data).decode()),
        ops.request("file_chunk", temp_path=dest, offset=0, data=""),
        ops.request("facts", queries=[{"id": "missing", "kind": "file", "path": dest}]),
        ops.request("remove_file", path=dest),
        ops.request("remove_file", path=f"{root}{SEP[root]}sub"),
    ]


def batch_sequence(root: str) -> list[dict[str, Any]]:
    logon = "HKLM:\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon\\AutoLogonChecked"
    current = "HKLM:\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion"
    return [
        ops.request("set_registry", key=logon, name="Parity", value=1, type="DWord"),
        ops.request("set_registry", key=current, name="CurrentBuildNumber", value="9600",
                    type="String"),
        # the lab's winrm_quota comes from its inventory vars (default 1024), not its registry:
        # the core reads the registry, seeded here with that default
        ops.request("set_registry", key="HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\"
                    "WSMAN\\Shell", name="MaxMemoryPerShellMB", value=1024, type="DWord"),
        ops.batch([ops.request("facts", queries=[]), {"op": "nope", "args": {}},
                   {"op": "remove_file", "args": {}}, ops.request("facts", queries=[])]),
        {"op": "nope", "args": {}},
        {"op": "ensure_directory", "args": {"path": 5}},
        ops.request("facts", queries=[{"id": "os", "kind": "os"},
                                      {"id": "disk", "kind": "disk", "drive": "C:"},
                                      {"id": "nodisk", "kind": "disk", "drive": "Q"},
                                      {"id": "svc", "kind": "service", "name": "NoSuchSvc"},
                                      {"id": "quota", "kind": "winrm_quota"},
                                      {"id": "installer", "kind": "installer_running"}]),
        ops.request("set_service", name="NoSuchSvc", state="running"),
    ]


INI = ("\ufeff[vxagent]\r\nHostname = wrong\r\n[ VxAgent.Transport ]\r\n"
       "  hostname =  cs01.contoso.local  \r\nPort=a=b\nno equals\n[]\n=empty key\n")


def ini_sequence(root: str) -> list[dict[str, Any]]:
    data = INI.encode() + b"bad \xff byte=\xfe\n"
    digest = hashlib.sha256(data).hexdigest()
    dest = f"{root}{SEP[root]}drscout.conf"

    def ini(id_: str, path: str, section: str, key: str) -> dict[str, Any]:
        return {"id": id_, "kind": "ini", "path": path, "section": section, "key": key}

    temp = TEMP_PATH
    return [
        ops.request("facts", queries=[ini("missing", dest, "vxagent.transport", "Hostname")]),
        ops.request("file_begin", destination=dest, size=len(data), sha256=digest),
        ops.request("file_chunk", temp_path=temp, offset=0, data=base64.b64encode(data).decode()),
        ops.request("file_end", temp_path=temp, destination=dest, sha256=digest),
        ops.request("facts", queries=[
            ini("cs", dest, "VXAGENT.TRANSPORT", "hostname"),
            ini("first", dest, "vxagent", "HOSTNAME"),
            ini("equals", dest, "vxagent.transport", "port"),
            ini("nokey", dest, "vxagent.transport", "Missing"),
            ini("nosection", dest, "nosuch", "Port"),
            ini("empty", dest, "", ""),
            ini("badbyte", dest, "", "bad \ufffd byte"),
            ini("directory", root, "a", "b"),
            {"id": "noargs", "kind": "ini", "path": dest},
        ]),
        ops.request("remove_file", path=dest),
    ]


def download_sequence(root: str) -> list[dict[str, Any]]:
    """download from a local path (run_as ignored there) and from a share that is not there,
    as the session and as SYSTEM (the core's one-shot task, under mono its stand-in)."""
    data = "bundle ü".encode()
    digest = hashlib.sha256(data).hexdigest()
    source, dest = f"{root}{SEP[root]}src.bin", f"{root}{SEP[root]}dl{SEP[root]}ua.bin"
    missing = "\\\\nosuchserver\\share\\ua.exe"
    return [
        ops.request("file_begin", destination=source, size=len(data), sha256=digest),
        ops.request("file_chunk", temp_path=TEMP_PATH, offset=0,
                    data=base64.b64encode(data).decode()),
        ops.request("file_end", temp_path=TEMP_PATH, destination=source, sha256=digest),
        ops.request("download", source=source, destination=dest, sha256=digest,
                    run_as="system"),
        ops.request("download", source=source, destination=dest, sha256=digest,
                    run_as="session"),
        ops.request("download", source=source, destination=dest + "2", sha256="0" * 64,
                    run_as="system"),
        ops.request("download", source=missing, destination=dest + "3", run_as="system"),
        ops.request("download", source=missing, destination=dest + "3"),
        {"op": "download", "args": {"source": source, "destination": dest, "run_as": "root"}},
        ops.request("facts", queries=[{"id": "dest", "kind": "file", "path": dest},
                                      {"id": "none", "kind": "file", "path": dest + "3"}]),
    ]


SEP: dict[str, str] = {}
TEMP_PATH = "<temp_path of the last file_begin on this side>"
SEQUENCES: dict[str, Sequence] = {
    "registry": registry_sequence, "product": product_sequence, "pending": pending_sequence,
    "files": file_sequence, "batch": batch_sequence, "ini": ini_sequence,
    "download": download_sequence,
}


def comparable(value: Any) -> Any:
    """An answer with unstable values (paths, times, sizes of real disks) reduced to presence,
    and error messages reduced to their type."""
    if isinstance(value, dict):
        if set(value) == {"type", "message"}:
            return {"type": value["type"]}
        return {k: (v is not None) if k in UNSTABLE else
                v.lower() if k == "product_id" and isinstance(v, str)   # mono lowers key names
                else comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


def with_temp_path(request: dict[str, Any], temp_path: str) -> dict[str, Any]:
    """`request` with TEMP_PATH replaced by the temp_path its side's file_begin answered."""
    if request["args"].get("temp_path") != TEMP_PATH:
        return request
    return {**request, "args": {**request["args"], "temp_path": temp_path}}


@pytest.fixture
def core(agent_session: SharedHost, tmp_path: Path) -> AgentHost:
    """The test process's agent host, reset for this test (as test_agent_core proves)."""
    return agent_session.host(tmp_path)


@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_lab_and_core_answer_alike(name: str, core: AgentHost, tmp_path: Path) -> None:
    lab_root, core_root = "C:\\Parity", str(tmp_path / "files")
    SEP.update({lab_root: "\\", core_root: "/"})
    lab = lab_host(f"parity-{name}")
    sequence = SEQUENCES[name]
    temp = {"lab": TEMP_PATH, "core": TEMP_PATH}
    for index, (for_lab, for_core) in enumerate(zip(sequence(lab_root), sequence(core_root),
                                                    strict=True)):
        for_lab, for_core = with_temp_path(for_lab, temp["lab"]), with_temp_path(for_core,
                                                                                 temp["core"])
        lab_answer = ops.decode_answer(lab.handle_line(ops.invocation(for_lab)))
        core_answer = core.line(ops.encode_request(for_core))
        for side, answer in (("lab", lab_answer), ("core", core_answer)):
            if answer["ok"] and isinstance(answer["result"], dict) and \
                    "temp_path" in answer["result"]:
                temp[side] = answer["result"]["temp_path"]
        assert comparable(core_answer) == comparable(lab_answer), (index, for_lab["op"])
