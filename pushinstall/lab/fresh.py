"""A fresh lab host: a Windows Server install as a new Azure VM has it, shaped by `lab:` vars.

Only the starting-state vars matter here: OS release, host name,
pending reboot, the Mobility service already installed (and to which CS it is registered), the
VM agent already installed, disk size and free space.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from pushinstall.lab import catalog, products
from pushinstall.lab.common import iso
from pushinstall.lab.state import AUTOLOGON_CHECKED, COMPUTER_NAME, SESSION_MANAGER, HostState
from pushinstall.lab.vars import LabVars, pending_signals

STATE_FORMAT = 1
OS_RELEASES: dict[str, dict[str, Any]] = {
    "2008r2": {"caption": "Microsoft Windows Server 2008 R2 Datacenter", "version": "6.1.7601",
               "build": 7601, "powershell_version": "2.0"},
    "2012": {"caption": "Microsoft Windows Server 2012 Datacenter", "version": "6.2.9200",
             "build": 9200, "powershell_version": "3.0"},
    "2012r2": {"caption": "Microsoft Windows Server 2012 R2 Datacenter", "version": "6.3.9600",
               "build": 9600, "powershell_version": "4.0"},
    "2016": {"caption": "Microsoft Windows Server 2016 Datacenter", "version": "10.0.14393",
             "build": 14393, "powershell_version": "5.1.14393.5582"},
    "2019": {"caption": "Microsoft Windows Server 2019 Datacenter", "version": "10.0.17763",
             "build": 17763, "powershell_version": "5.1.17763.5576"},
    "2022": {"caption": "Microsoft Windows Server 2022 Datacenter", "version": "10.0.20348",
             "build": 20348, "powershell_version": "5.1.20348.2340"},
}
SYSTEM32 = "C:\\Windows\\System32"
SYSTEM_PROGRAMS = {
    f"{SYSTEM32}\\msiexec.exe": "msiexec",
    f"{SYSTEM32}\\shutdown.exe": "shutdown",
    f"{SYSTEM32}\\cmd.exe": "cmd",
    f"{SYSTEM32}\\sc.exe": "sc",
    f"{SYSTEM32}\\WindowsPowerShell\\v1.0\\powershell.exe": "powershell",
}
_DIRECTORIES = (
    "C:\\Windows\\Temp", "C:\\Windows\\System32\\WindowsPowerShell\\v1.0",
    "C:\\Program Files", "C:\\Program Files (x86)", "C:\\ProgramData",
    "C:\\Users\\Administrator\\Documents", "C:\\Users\\Public",
)
# (name, display name, start mode, status, image path)
_BUILTIN_SERVICES = (
    ("WinRM", "Windows Remote Management (WS-Management)", "AutomaticDelayed", "Running",
     "C:\\Windows\\System32\\svchost.exe -k NetworkService -p"),
    ("W32Time", "Windows Time", "Manual", "Running",
     "C:\\Windows\\system32\\svchost.exe -k LocalService"),
    ("Spooler", "Print Spooler", "Automatic", "Running", "C:\\Windows\\System32\\spoolsv.exe"),
    ("wuauserv", "Windows Update", "Manual", "Stopped",
     "C:\\Windows\\system32\\svchost.exe -k netsvcs -p"),
    ("msiserver", "Windows Installer", "Manual", "Stopped",
     "C:\\Windows\\system32\\msiexec.exe /V"),
    ("VSS", "Volume Shadow Copy", "Manual", "Stopped", "C:\\Windows\\system32\\vssvc.exe"),
)


def default_hostname(name: str) -> str:
    """The NetBIOS name Windows shows for an inventory name: first label, 15 chars, upper."""
    return name.split(".")[0][:15].upper() or "LABHOST"


def fresh_state(name: str, lab: LabVars, blob_dir: Path) -> HostState:
    """A new machine for host `name`; its files are written into `blob_dir`."""
    booted = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(days=3)
    hostname = lab.hostname or default_hostname(name)
    data: dict[str, Any] = {
        "format": STATE_FORMAT, "name": name, "hostname": hostname, "os": lab.os,
        "boot_time": iso(booted), "dark_until": 0.0, "registry": {}, "services": {},
        "fs": {"dirs": {}, "files": {}, "free_bytes": lab.disk_total_bytes,
               "total_bytes": lab.disk_total_bytes},
        "generation": 0,
    }
    state = HostState(data, blob_dir)
    release = OS_RELEASES[lab.os]
    for directory in _DIRECTORIES:
        state.fs.make_dirs(directory)
    for path, program in SYSTEM_PROGRAMS.items():
        state.fs.write(path, catalog.binary(program))
    current = "HKLM:\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion"
    state.registry.set(current, "ProductName", release["caption"].replace("Microsoft ", ""),
                       "String")
    state.registry.set(current, "CurrentBuild", str(release["build"]), "String")
    state.registry.set(current, "CurrentVersion",
                       {"2008r2": "6.1", "2012": "6.2"}.get(lab.os, "6.3"), "String")
    state.registry.create_key(SESSION_MANAGER)
    state.registry.create_key(AUTOLOGON_CHECKED)
    for sub in ("ActiveComputerName", "ComputerName"):
        state.registry.set(f"{COMPUTER_NAME}\\{sub}", "ComputerName", hostname, "String")
    for view in ("64", "32"):
        state.registry.create_key("HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion"
                                  "\\Uninstall", view)
    for service, display, mode, status, image in _BUILTIN_SERVICES:
        state.add_service(service, display, mode, image, status=status)
    for signal in pending_signals(lab):
        state.set_pending(signal)
    everything_runs = LabVars()
    if lab.installed_version or lab.registered_to:
        version = lab.installed_version or catalog.ASR_VERSION
        products.install_ua(state, version, products.UA_DEFAULT_LOCATION, "Agent")
        products.start_ua_services(state, everything_runs)
        # the bundle carried the VM agent and left it disabled on-premises
        products.install_vm_agent(state, everything_runs, catalog.VM_AGENT_VERSION)
        products.disable_vm_agent_services(state)
        if lab.registered_to:
            products.register_ua(state, lab.registered_to, "CSLegacy")
    if lab.vm_agent_version:
        products.install_vm_agent(state, everything_runs, lab.vm_agent_version)
    # `disk_free_bytes` is what is free once all of the above is in place
    state.data["fs"]["free_bytes"] = lab.disk_free_bytes
    return state
