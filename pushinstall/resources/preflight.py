"""`preflight`: what the Mobility service installer needs, checked before anything changes.

The step plans `fail` (so the host stops before any later step applies) when one check does
not hold, each named with its fix: a supported OS (Windows Server 2012 R2 or later, Windows
10/11; 2012 and 2008 R2 are not supported), the PowerShell version, on PowerShell 3.0 the WinRM
shell memory quota a 600 MB installer runs into, free space on the system drive, the target
reaching the configuration server on 443 and the process server on 9443 (the target's own TCP
view, not the controller's), no other installation running, and no agent already registered
to another configuration server (the installer's exit 13).
"""

from __future__ import annotations

from typing import Any

from pushinstall.argspec import BOOLEAN, INTEGER, PATH, Arg, Rule
from pushinstall.model import Decision
from pushinstall.resources.base import Applied, ApplyContext, Plan, Probe
from pushinstall.resources.common import probe_failure, version_key

MIB = 1024**2
# Server 2012 R2 is build 9600; Windows 10 and 11 report 10.0 builds
SUPPORTED_BUILD = 9600
UNSUPPORTED = {7601: "Windows Server 2008 R2", 9200: "Windows Server 2012"}
# WinRM on PowerShell 3.0 applies MaxMemoryPerShellMB only with KB2842230; below this a
# remote shell running the 600 MB installer is killed
SHELL_MEMORY_MB = 1024

ARGS = (
    Arg("cs_endpoint", required=True, doc="Configuration server the target must reach on 443."),
    Arg("process_server", doc="Process server the target must reach on 9443 (default: the "
        "configuration server)."),
    Arg("registration_file", PATH, doc="The agent's drscout.conf: an agent registered there to "
        "another configuration server stops the host (the installer would answer 13)."),
    Arg("require_registered", BOOLEAN, default=False, doc="The agent must already be registered "
        "to cs_endpoint in registration_file (an upgrade keeps a registration, never makes "
        "one)."),
    Arg("mode", choices=("classic", "modernized", "legacy"),
        doc="The installer generation the playbook runs (asr_mode): checked here so a typo "
            "is bad input, not a host that silently runs no registration step."),
    Arg("min_powershell", default="3.0", doc="Lowest PowerShell version on the target."),
    Arg("min_free_mb", INTEGER, default=2048, minimum=1,
        doc="Free MB on the system drive for the bundle, its extraction and the install."),
)
RULES: tuple[Rule, ...] = ()


def probes(args: dict[str, Any]) -> list[Probe]:
    """os, disk C:, TCP from the target to the CS and PS, the WinRM quota, a running
    installer, and the registered CS."""
    found = [
        Probe("os", {"kind": "os"}),
        Probe("disk", {"kind": "disk", "drive": "C:"}),
        Probe("cs", {"kind": "tcp", "host": str(args["cs_endpoint"]), "port": 443}),
        Probe("ps", {"kind": "tcp", "host": str(args.get("process_server")
                                                or args["cs_endpoint"]), "port": 9443}),
        Probe("quota", {"kind": "winrm_quota"}),
        Probe("busy", {"kind": "installer_running"}),
    ]
    if args.get("registration_file"):
        found.append(Probe("registered", {"kind": "ini", "path": str(args["registration_file"]),
                                          "section": "vxagent.transport", "key": "Hostname"}))
    return found


def _os_problems(args: dict[str, Any], found: dict[str, Any]) -> list[str]:
    facts = found["os"]
    build = int(facts.get("build") or 0)
    caption = str(facts.get("caption") or "")
    problems = []
    if build < SUPPORTED_BUILD:
        name = UNSUPPORTED.get(build, caption or f"build {build}")
        problems.append(f"{name} is not supported by the Mobility service: upgrade to Windows "
                        "Server 2012 R2 or later (see the Azure Site Recovery support matrix)")
    powershell = str(facts.get("powershell_version") or "0")
    if version_key(powershell) < version_key(str(args.get("min_powershell") or "3.0")):
        problems.append(f"PowerShell {powershell} is older than {args.get('min_powershell')}: "
                        "install WMF 3.0 or later")
    quota = found["quota"]
    if powershell.startswith("3.") and (
            not quota.get("hotfix_kb2842230")
            or int(quota.get("max_memory_per_shell_mb") or 0) < SHELL_MEMORY_MB):
        problems.append("PowerShell 3.0: a remote shell's memory quota stops a 600 MB "
                        "installer; install KB2842230 and set MaxMemoryPerShellMB to at least "
                        f"{SHELL_MEMORY_MB} (winrm set winrm/config/winrs "
                        f"@{{MaxMemoryPerShellMB=\"{SHELL_MEMORY_MB}\"}})")
    return problems


def _target_problems(args: dict[str, Any], found: dict[str, Any]) -> list[str]:
    problems = []
    free = found["disk"].get("free_bytes")
    wanted = int(args.get("min_free_mb") or 2048)
    if free is not None and free < wanted * MIB:
        problems.append(f"C: has {free // MIB} MB free, {wanted} MB needed: free space on the "
                        "system drive")
    for probe, port, role in (("cs", 443, "configuration server"),
                              ("ps", 9443, "process server")):
        fact = found[probe]
        if not fact.get("reachable"):
            problems.append(f"the target cannot reach the {role} on {port} "
                            f"({fact.get('error') or 'no answer'}): open the firewall from "
                            "this host")
    if found["busy"].get("running"):
        problems.append("another installation is running: wait for it to finish (the "
                        "installer would answer 41)")
    registered = found.get("registered")
    if args.get("require_registered") and not (registered and registered.get("found")):
        problems.append("the agent is not registered to a configuration server: install "
                        "and register it first (asr-mobility.yml)")
    if registered and registered.get("found") and \
            str(registered.get("value")) != str(args["cs_endpoint"]):
        problems.append(f"the agent is registered to {registered.get('value')}, not "
                        f"{args['cs_endpoint']}: unregister it first or set cs_endpoint to it "
                        "(the installer would answer 13)")
    return problems


def plan(args: dict[str, Any], found: dict[str, Any]) -> Plan:
    """`ok` when every check holds, else `fail` naming each problem with its fix."""
    failed = probe_failure(found, "preflight")
    if failed:
        return failed
    problems = _os_problems(args, found) + _target_problems(args, found)
    if not problems:
        return Plan(Decision.OK)
    return Plan(Decision.FAIL, reason="preflight: " + "; ".join(problems))


def apply(args: dict[str, Any], ctx: ApplyContext) -> Applied:
    """Never called: a preflight is `ok` or `fail`, there is nothing to change."""
    return Applied(changed=False, failed=True, message="preflight has nothing to apply")
