"""The `facts` op on a lab host: every fact kind of docs/ops.md, shaped as agent.ps1 answers."""

from __future__ import annotations

from typing import Any

from pushinstall.lab import catalog
from pushinstall.lab.common import fail
from pushinstall.lab.fresh import OS_RELEASES
from pushinstall.lab.fs import normalize
from pushinstall.lab.registry import RegistryError
from pushinstall.lab.state import AUTOLOGON_CHECKED, HostState
from pushinstall.lab.vars import LabVars

_NO_FILE = {"exists": False, "is_directory": False, "size": None, "sha256": None,
            "modified": None}
_NO_SERVICE = {"exists": False, "name": None, "display_name": None, "status": None,
               "start_mode": None}
_NO_PRODUCT = {"installed": False, "product_id": None, "name": None, "version": None,
               "install_location": None, "view": None}


def open_ports(state: HostState, lab: LabVars) -> set[tuple[str, int]]:
    """(lowercase host, port) pairs a lab host can connect to."""
    ports = {("labshare", 445), ("labweb", 80), ("labweb", 443)}
    if not lab.cs_port_closed:
        ports |= {(lab.cs_endpoint.lower(), 443), (lab.cs_endpoint.lower(), 9443)}
    for me in ("localhost", "127.0.0.1", state.data["hostname"].lower()):
        ports |= {(me, 5985), (me, 5986)}
    for entry in lab.open_ports:
        host, _, port = entry.rpartition(":")
        ports.add((host.lower(), int(port)))
    return ports


def _registry(state: HostState, query: dict[str, Any]) -> dict[str, Any]:
    key, name, view = query["key"], query.get("name") or "", query.get("view") or "64"
    try:
        if not state.registry.key_exists(key, view):
            return {"key_exists": False, "exists": False, "value": None, "type": None}
        found = state.registry.get(key, name, view)
    except RegistryError as exc:
        fail("InvalidArgument", str(exc))
    if found is None:
        return {"key_exists": True, "exists": False, "value": None, "type": None}
    return {"key_exists": True, "exists": True, "value": found["value"], "type": found["type"]}


def _file(state: HostState, lab: LabVars, query: dict[str, Any]) -> dict[str, Any]:
    path, with_hash = query["path"], query.get("hash", True) is not False
    if path.startswith("\\\\"):
        if catalog.is_share(path) and lab.share_requires_credential:  # the double hop
            fail("AccessDenied", f"Access to the path '{path}' is denied.")
        name = catalog.name_of(path) if catalog.is_share(path) else None
        if name is None:
            return dict(_NO_FILE)
        content = catalog.files()[name]
        return {"exists": True, "is_directory": False, "size": len(content),
                "sha256": catalog.sha256_of(name) if with_hash else None,
                "modified": "2024-07-01T00:00:00Z"}
    full = normalize(path)
    if state.fs.is_dir(full):
        directory = state.fs.dirs.get(full.lower(), {"modified": state.data["boot_time"]})
        return {"exists": True, "is_directory": True, "size": None, "sha256": None,
                "modified": directory["modified"]}
    entry = state.fs.entry(full)
    if entry is None:
        return dict(_NO_FILE)
    return {"exists": True, "is_directory": False, "size": entry["size"],
            "sha256": state.fs.sha256(full) if with_hash else None,
            "modified": entry["modified"]}


def _service(state: HostState, query: dict[str, Any]) -> dict[str, Any]:
    record = state.find_service(query["name"])
    if record is None:
        return dict(_NO_SERVICE)
    return {"exists": True, "name": record["name"], "display_name": record["display_name"],
            "status": record["status"], "start_mode": state.start_mode(record["name"])}


def _os(state: HostState) -> dict[str, Any]:
    release = OS_RELEASES[state.data["os"]]
    return {"hostname": state.data["hostname"], "caption": release["caption"],
            "version": release["version"], "build": release["build"],
            "architecture": "64-bit", "powershell_version": release["powershell_version"],
            "last_boot_time": state.data["boot_time"],
            "boot_finished": state.registry.key_exists(AUTOLOGON_CHECKED)}


def _disk(state: HostState, query: dict[str, Any]) -> dict[str, Any]:
    letter = query["drive"].rstrip("\\").rstrip(":")
    if len(letter) != 1:
        fail("InvalidArgument", 'drive is a drive letter like "C:"')
    if letter.upper() != "C":
        return {"exists": False, "free_bytes": None, "total_bytes": None}
    fs = state.data["fs"]
    return {"exists": True, "free_bytes": fs["free_bytes"], "total_bytes": fs["total_bytes"]}


def _tcp(state: HostState, lab: LabVars, query: dict[str, Any]) -> dict[str, Any]:
    host, port = query["host"].lower(), query["port"]
    if (host, port) in open_ports(state, lab):
        return {"reachable": True, "elapsed_ms": 1, "error": None}
    if host == lab.cs_endpoint.lower() and lab.cs_port_closed:
        # a firewall drops the packets: the wait runs out (not slept: simulated time)
        timeout = query.get("timeout_ms", 3000)
        return {"reachable": False, "elapsed_ms": timeout,
                "error": f"no answer within {timeout} ms"}
    return {"reachable": False, "elapsed_ms": 2,
            "error": "No connection could be made because the target machine actively "
                     f"refused it {query['host']}:{port}"}


def _ini(state: HostState, query: dict[str, Any]) -> dict[str, Any]:
    """One `key=value` of a `[section]` in a text file (drscout.conf's registered CS)."""
    path = query["path"]
    if not state.fs.is_file(path):
        return {"exists": False, "found": False, "value": None}
    section, wanted = None, query["section"].lower()
    for line in state.fs.read(path).decode("utf-8", "replace").lstrip("\ufeff").splitlines():
        text = line.strip()
        if text.startswith("[") and text.endswith("]"):
            section = text[1:-1].strip().lower()
        elif section == wanted and "=" in text:
            key, _, value = text.partition("=")
            if key.strip().lower() == query["key"].lower():
                return {"exists": True, "found": True, "value": value.strip()}
    return {"exists": True, "found": False, "value": None}


def _winrm_quota(state: HostState, lab: LabVars) -> dict[str, Any]:
    """The WinRM shell memory quota and whether KB2842230 (which makes WinRM honour it on
    PowerShell 3.0) is installed."""
    return {"max_memory_per_shell_mb": lab.max_memory_per_shell_mb,
            "hotfix_kb2842230": lab.hotfix_kb2842230 or state.data["os"] != "2012"}


def fact(state: HostState, lab: LabVars, query: dict[str, Any]) -> dict[str, Any]:
    """One fact for an already validated query."""
    kind = query["kind"]
    if kind == "registry":
        return _registry(state, query)
    if kind == "file":
        return _file(state, lab, query)
    if kind == "service":
        return _service(state, query)
    if kind == "product":
        found = state.find_product(query.get("product_id") or "", query.get("name") or "")
        return found if found is not None else dict(_NO_PRODUCT)
    if kind == "pending_reboot":
        signals = state.pending_signals()
        if query.get("sccm"):
            signals["sccm_client"] = False      # the lab has no SCCM client
        return {"pending": any(signals.values()), "signals": signals}
    if kind == "os":
        return _os(state)
    if kind == "disk":
        return _disk(state, query)
    if kind == "ini":
        return _ini(state, query)
    if kind == "winrm_quota":
        return _winrm_quota(state, lab)
    if kind == "installer_running":
        running = lab.install_running
        return {"running": running, "processes": ["msiexec.exe"] if running else []}
    return _tcp(state, lab, query)
