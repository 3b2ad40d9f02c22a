"""What the simulated installers leave on a lab host: products, services, files, registry.

The ASR Mobility service (`UnifiedAgent.exe`): the Uninstall entry `{275197FC-...}` in the
32-bit view (an x86 product under `Program Files (x86)`), the InMage values under
`HKLM\\SOFTWARE\\Wow6432Node\\InMage Systems\\Installed Products\\5`, the services `svagents`,
`InMage Scout Application Service` and `frsvc` created Automatic (Delayed Start) as the MSI's
ServiceInstall entries do, the `Azure Site Recovery VSS Provider`, the InDskFlt filter driver
(a file under `drivers\\` and its service key), and the agent's files including
`agent\\UnifiedAgentConfigurator.exe`. Registration writes the configuration server into
`<InstallLocation>\\agent\\Application Data\\etc\\drscout.conf` and sets
`AgentConfigurationStatus`. An uninstall removes the driver's service key at once but its file
only at the next restart: until then a new install answers 62.

The Azure VM agent (`msiexec /i WindowsAzureVmAgent.msi`): `{5CF4D04A-...}` in the 64-bit view,
services `WindowsAzureGuestAgent`, `WindowsAzureTelemetryService` and `RdAgent`.
"""

from __future__ import annotations

import datetime as dt
import re

from pushinstall.lab import catalog
from pushinstall.lab.state import HostState
from pushinstall.lab.vars import GIB, LabVars

UA_PRODUCT_ID = "{275197FC-14FD-4560-A5EB-38217F80CBD1}"
UA_NAME = "Microsoft Azure Site Recovery Mobility Service/Master Target Server"
UA_DEFAULT_LOCATION = "C:\\Program Files (x86)\\Microsoft Azure Site Recovery"
INMAGE_KEY = "HKLM:\\SOFTWARE\\Wow6432Node\\InMage Systems\\Installed Products\\5"
UA_SERVICES = ("svagents", "InMage Scout Application Service", "frsvc",
               "Azure Site Recovery VSS Provider")
DRIVER_FILE = "C:\\Windows\\System32\\drivers\\InDskFlt.sys"
DRIVER_KEY = "HKLM:\\SYSTEM\\CurrentControlSet\\Services\\InDskFlt"
UA_FOOTPRINT = 600 * 1024**2
UA_MIN_FREE = 1 * GIB
VM_AGENT_PRODUCT_ID = "{5CF4D04A-F16C-4892-9196-6025EA61F964}"
VM_AGENT_SERVICES = ("WindowsAzureGuestAgent", "WindowsAzureTelemetryService", "RdAgent")
VM_AGENT_FOOTPRINT = 80 * 1024**2
_DRSCOUT_HOST = re.compile(r"^Hostname=(.*)$", re.MULTILINE)


def _today() -> str:
    return dt.date.today().strftime("%Y%m%d")


def start_service(state: HostState, lab: LabVars, name: str) -> str:
    """Start a service the way its faults allow; returns the status it reached.

    `services_that_wont_start`: stays Stopped. `service_stops_after_start`: reaches Running
    (so a start that waits for Running succeeds) and has crashed by the next look: the
    record is Stopped, the returned status Running."""
    record = state.find_service(name)
    if record is None:
        return "Stopped"
    wanted = {s.lower() for s in lab.services_that_wont_start}
    if record["name"].lower() in wanted or record["display_name"].lower() in wanted:
        return record["status"]
    crashing = {s.lower() for s in lab.service_stops_after_start}
    crashes = record["name"].lower() in crashing or record["display_name"].lower() in crashing
    state.set_status(record, "Stopped" if crashes else "Running")
    return "Running"


# ---------------------------------------------------------------- ASR Mobility service


def installed_ua(state: HostState) -> tuple[str, str] | None:
    """(version, install directory) of the Mobility service, or None."""
    version = state.registry.value(INMAGE_KEY, "Version")
    location = state.registry.value(INMAGE_KEY, "InstallDirectory")
    if not isinstance(version, str) or state.find_product(UA_PRODUCT_ID) is None:
        return None
    return version, str(location)


def drscout_path(location: str) -> str:
    """Where the agent keeps its configuration (the registered CS among it)."""
    return f"{location}\\agent\\Application Data\\etc\\drscout.conf"


def registered_cs(state: HostState) -> str | None:
    """The configuration server the agent is registered with, from drscout.conf."""
    installed = installed_ua(state)
    if installed is None or not state.fs.is_file(drscout_path(installed[1])):
        return None
    match = _DRSCOUT_HOST.search(state.fs.read(drscout_path(installed[1])).decode("utf-8"))
    return match.group(1).strip() if match else None


def install_ua(state: HostState, version: str, location: str, role: str) -> None:
    """Lay the Mobility service down (a fresh install or an upgrade in place)."""
    upgrade = installed_ua(state) is not None
    if not upgrade:
        state.fs.reserve(UA_FOOTPRINT)
    agent = f"{location}\\agent"
    state.fs.make_dirs(agent)
    state.fs.make_dirs(f"{agent}\\Application Data\\etc")
    state.fs.write(f"{agent}\\UnifiedAgentConfigurator.exe", catalog.configurator(version))
    state.fs.write(f"{agent}\\svagents.exe", catalog.binary("svagents", version=version))
    state.fs.write(f"{agent}\\appservice.exe", catalog.binary("appservice", version=version))
    state.add_product(UA_PRODUCT_ID, "32", {
        "DisplayName": UA_NAME, "DisplayVersion": version, "Publisher": "Microsoft Corporation",
        "InstallLocation": location + "\\", "InstallDate": _today(),
        "UninstallString": f"MsiExec.exe /X{UA_PRODUCT_ID}",
        "EstimatedSize": UA_FOOTPRINT // 1024, "NoModify": 1, "NoRepair": 1,
    })
    state.registry.set(INMAGE_KEY, "Version", version, "String")
    state.registry.set(INMAGE_KEY, "InstallDirectory", location, "String")
    state.registry.set(INMAGE_KEY, "Role", role, "String")
    state.registry.set(INMAGE_KEY, "PostInstallActions", "Succeeded", "String")
    state.add_service("svagents", "InMage Scout VX Agent - Sentinel/Outpost", "AutomaticDelayed",
                      f'"{agent}\\svagents.exe"',
                      description="Volume replication agent of Azure Site Recovery.")
    state.add_service("InMage Scout Application Service", "InMage Scout Application Service",
                      "AutomaticDelayed", f'"{agent}\\appservice.exe"',
                      description="Application discovery and consistency for Azure Site "
                                  "Recovery.")
    state.fs.make_dirs(f"{location}\\FileRep")
    state.fs.write(f"{location}\\FileRep\\frsvc.exe", catalog.binary("frsvc", version=version))
    state.add_service("frsvc", "InMage Scout FX Agent", "AutomaticDelayed",
                      f'"{location}\\FileRep\\frsvc.exe"',
                      description="File replication agent of Azure Site Recovery.")
    state.fs.make_dirs(DRIVER_FILE.rsplit("\\", 1)[0])
    state.fs.write(DRIVER_FILE, catalog.binary("indskflt", version=version))
    state.registry.set(DRIVER_KEY, "ImagePath", "System32\\drivers\\InDskFlt.sys", "ExpandString")
    state.registry.set(DRIVER_KEY, "Type", 1, "DWord")
    state.registry.set(DRIVER_KEY, "Start", 0, "DWord")
    state.add_service("Azure Site Recovery VSS Provider", "Azure Site Recovery VSS Provider",
                      "Manual", "C:\\Windows\\system32\\dllhost.exe "
                      "/Processid:{B2C3F2B5-4CC9-4F5A-9F29-7C1B8F6C4F2A}")


def start_ua_services(state: HostState, lab: LabVars) -> None:
    """The agent's installer starts its three delayed-start services."""
    for name in UA_SERVICES[:3]:
        start_service(state, lab, name)


def stale_driver(state: HostState) -> bool:
    """True when the InDskFlt driver file remains without its service key (an uninstall that
    has not had its restart yet): the installer's exit 62."""
    return state.fs.is_file(DRIVER_FILE) and not state.registry.key_exists(DRIVER_KEY)


def after_restart(state: HostState) -> None:
    """A restart finishes an uninstall: the orphaned driver file is gone."""
    if stale_driver(state):
        state.fs.remove(DRIVER_FILE)


def register_ua(state: HostState, endpoint: str, cs_type: str) -> None:
    """Registration succeeded: drscout.conf names the CS, the configuration status says so."""
    installed = installed_ua(state)
    assert installed is not None, "register_ua needs the agent installed"
    conf = (f"[vxagent]\r\nCSType={cs_type}\r\n[vxagent.transport]\r\nHostname={endpoint}\r\n"
            "Port=443\r\nHttps=1\r\n")
    state.fs.write(drscout_path(installed[1]), conf.encode("utf-8"))
    state.registry.set(INMAGE_KEY, "AgentConfigurationStatus", "Succeeded", "String")


def configuration_failed(state: HostState) -> None:
    """A registration attempt failed: the status says so."""
    if installed_ua(state) is not None:
        state.registry.set(INMAGE_KEY, "AgentConfigurationStatus", "Failed", "String")


def uninstall_ua(state: HostState) -> None:
    """`msiexec /x {275197FC-...}`: product, services, registry values and files gone."""
    installed = installed_ua(state)
    if installed is None:
        return
    for name in UA_SERVICES:
        state.remove_service(name)
    state.remove_product(UA_PRODUCT_ID, "32")
    state.registry.delete_key(INMAGE_KEY)
    state.registry.delete_key(DRIVER_KEY)  # the file goes at the next restart (after_restart)
    prefix = installed[1].lower() + "\\"
    for key in [k for k in state.fs.files if k.startswith(prefix)]:
        state.fs.remove(key)
    state.fs.reserve(-UA_FOOTPRINT)


# ---------------------------------------------------------------- Azure VM agent


def vm_agent_version(state: HostState) -> str | None:
    """The installed Azure VM agent's version, or None."""
    product = state.find_product(VM_AGENT_PRODUCT_ID)
    return None if product is None else str(product["version"])


def install_vm_agent(state: HostState, lab: LabVars, version: str) -> None:
    """What the VM agent MSI does: product, files, two Automatic services started."""
    if vm_agent_version(state) is None:
        state.fs.reserve(VM_AGENT_FOOTPRINT)
    agent_dir = f"C:\\WindowsAzure\\GuestAgent_{version}"
    state.fs.make_dirs(agent_dir)
    state.fs.make_dirs("C:\\WindowsAzure\\Packages")
    state.fs.write(f"{agent_dir}\\WindowsAzureGuestAgent.exe",
                   catalog.binary("guest-agent", version=version))
    state.fs.write("C:\\WindowsAzure\\Packages\\WaAppAgent.exe",
                   catalog.binary("rdagent", version=version))
    state.add_product(VM_AGENT_PRODUCT_ID, "64", {
        "DisplayName": f"Windows Azure VM Agent - {version}", "DisplayVersion": version,
        "Publisher": "Microsoft Corporation", "InstallLocation": "C:\\WindowsAzure\\",
        "InstallDate": _today(), "UninstallString": f"MsiExec.exe /X{VM_AGENT_PRODUCT_ID}",
        "EstimatedSize": VM_AGENT_FOOTPRINT // 1024, "WindowsInstaller": 1,
    })
    state.add_service("WindowsAzureGuestAgent", "Windows Azure Guest Agent", "Automatic",
                      f"{agent_dir}\\WindowsAzureGuestAgent.exe")
    state.add_service("WindowsAzureTelemetryService", "Windows Azure Telemetry Service",
                      "Automatic", "C:\\WindowsAzure\\Packages\\WaAppAgent.exe /telemetry")
    state.add_service("RdAgent", "RdAgent", "Automatic",
                      "C:\\WindowsAzure\\Packages\\WaAppAgent.exe")
    for name in VM_AGENT_SERVICES:
        start_service(state, lab, name)


def disable_vm_agent_services(state: HostState) -> None:
    """What the Mobility service installer does on-premises to the VM agent it bundles."""
    for name in VM_AGENT_SERVICES:
        record = state.find_service(name)
        if record is not None:
            state.set_status(record, "Stopped")
            state.set_start_mode(name, "Disabled")


def uninstall_vm_agent(state: HostState) -> None:
    """`msiexec /x {5CF4D04A-...}`."""
    if vm_agent_version(state) is None:
        return
    for name in VM_AGENT_SERVICES:
        state.remove_service(name)
    state.remove_product(VM_AGENT_PRODUCT_ID, "64")
    for key in [k for k in state.fs.files if k.startswith("c:\\windowsazure\\")]:
        state.fs.remove(key)
    state.fs.reserve(-VM_AGENT_FOOTPRINT)
