"""The programs a lab host can run, with the real installers' switches and exit codes.

A program is known by its file's content (the `catalog` blob header), so a copied or renamed
installer still runs as itself. Arguments arrive as the argv the program would get: the
`run_process` argument list joined by the Windows quoting rules and split back, so quoting
mistakes would show here as on Windows. Switches are case-insensitive.

UnifiedAgent.exe exit codes (`UASetupReturnValues` in the agent's SetupHelper.cs, see
docs/lab.md for each source): 0 success; 98 succeeded with warnings, a restart is needed; 97
a driver needs a mandatory restart (both leave a pending-reboot signal; the installer does not
restart by itself); 2 invalid arguments, an unknown switch included; 13 registered to another
configuration server; 14 invalid passphrase (file missing or wrong content) or malformed CS
endpoint; 15 a newer build is installed (downgrade refused); 17 registration failed (the CS
does not answer on 443: another address than the lab's `cs_endpoint`, or `cs_port_closed`);
19 invalid source configuration file (modernized); 41 another installation is running
(`install_running`); 42 unsupported OS (`os: 2008r2`); 62 an InDskFlt driver file remains
without its service key (an uninstall not yet followed by its restart) — a pending file
rename alone does not stop it; 99 prerequisite validation failed (less than 1 GiB free). The
same build already installed answers 0 and changes nothing. The configurator shares 2, 13,
14, 17, 19 and may answer 3010 after registering. msiexec: 0, 3010, 1603 fatal error, 1605
unknown product, 1618 another installation running, 1619 package missing, 1620 not a package,
1638 another version installed, 1639 bad command line; without `/q*` it waits on an
invisible dialog forever.

Since 9.7 the Mobility service bundle on the VMware platform installs the Azure VM agent it
carries and then stops and disables WindowsAzureGuestAgent, WindowsAzureTelemetryService and
RdAgent: they are meant to start after failover in Azure, not on-premises.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pushinstall.errors import RemoteOpFailed
from pushinstall.lab import catalog, products
from pushinstall.lab.state import HostState
from pushinstall.lab.vars import LabVars

ASR_PROGRAMS = frozenset({"asr-bundle", "unified-agent", "configurator"})
INSTALLERS = ASR_PROGRAMS | {"msiexec"}
REBOOT_CODES = frozenset({3010, 1641, 98, 97})
# bundles from this build on refuse the one-step /CSEndpoint /PassphraseFilePath install
ONE_STEP_REMOVED = (9, 48)
# from this build on the bundle carries the Azure VM agent
VM_AGENT_BUNDLED = (9, 7)
UA_LOG = "C:\\ProgramData\\ASRSetupLogs\\ASRUnifiedAgentInstaller.log"
CONFIGURATOR_LOG = "C:\\ProgramData\\ASRSetupLogs\\ASRUnifiedAgentConfigurator.log"
MSI_LOG = "C:\\ProgramData\\ASRSetupLogs\\UnifiedAgentMSIInstall.log"
_UA_SWITCHES = {"role": True, "installlocation": True, "platform": True, "silent": False,
                "cstype": True}
_UA_ONE_STEP_SWITCHES = {**_UA_SWITCHES, "csendpoint": True, "passphrasefilepath": True}
_CONFIGURATOR_SWITCHES = {"csendpoint": True, "passphrasefilepath": True, "cstype": True,
                          "sourceconfigfilepath": True, "credentiallessdiscovery": True}
_ENDPOINT = re.compile(r"^(?:\d{1,3}(?:\.\d{1,3}){3}|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}))$")


@dataclass
class Outcome:
    """A finished program: exit code and its output lines."""

    exit_code: int
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)


@dataclass
class Context:
    """What a program may touch: the machine, its faults, and a way to restart it."""

    state: HostState
    lab: LabVars
    reboot: Callable[[], None]


class _BadArguments(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _switches(argv: list[str], known: dict[str, bool]) -> dict[str, str]:
    """`/Name value` and `/Flag` pairs by lowercase name; 2 for an unknown switch or one
    without its value (the installer's InvalidArguments, not a code of its own)."""
    found: dict[str, str] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        name = token[1:].lower() if token.startswith(("/", "-")) else None
        if name is None or name not in known:
            raise _BadArguments(2, f"Invalid argument: {token}")
        if known[name]:
            if i + 1 >= len(argv):
                raise _BadArguments(2, f"Missing value for {token}")
            found[name] = argv[i + 1]
            i += 2
        else:
            found[name] = "true"
            i += 1
    return found


def duration(meta: dict[str, Any], argv: list[str], lab: LabVars) -> float:
    """How long the program runs: `installer_seconds` for installers, forever for an
    installer that waits on a dialog nobody can see."""
    program = meta["program"]
    lowered = [a.lower() for a in argv]
    if program == "msiexec" and not any(a.startswith(("/q", "-q")) for a in lowered):
        return float("inf")
    if program == "asr-bundle" and "/q" not in lowered:
        return float("inf")
    return lab.installer_seconds if program in INSTALLERS else 0.0


def _log(ctx: Context, path: str, lines: list[str]) -> None:
    """Append to an installer log; a full disk loses the log, as it would on Windows."""
    try:
        ctx.state.fs.make_dirs(path.rsplit("\\", 1)[0])
        old = ctx.state.fs.read(path) if ctx.state.fs.is_file(path) else b""
        ctx.state.fs.write(path, old + "".join(f"{line}\r\n" for line in lines).encode("utf-8"))
    except RemoteOpFailed:
        pass


def _finish(ctx: Context, log: str, code: int, message: str) -> Outcome:
    _log(ctx, log, [message, f"Exit code: {code}"])
    stream = [message]
    return Outcome(code, stdout=stream) if code in (0, *REBOOT_CODES) else Outcome(
        code, stderr=stream)


def _check_passphrase(ctx: Context, path: str | None) -> str | None:
    """None when the passphrase file holds the CS passphrase, else why not."""
    if not path or not ctx.state.fs.is_file(path):
        return "Passphrase file not found"
    text = ctx.state.fs.read(path).decode("utf-8", errors="replace").lstrip("\ufeff").strip()
    return None if text == ctx.lab.cs_passphrase else "Invalid passphrase"


def _cs_answers(ctx: Context, endpoint: str) -> bool:
    return endpoint == ctx.lab.cs_endpoint and not ctx.lab.cs_port_closed


def _register(ctx: Context, endpoint: str, passphrase_path: str | None, cs_type: str,
              log: str) -> Outcome:
    """The registration both UnifiedAgent (one-step) and the configurator perform."""
    current = products.registered_cs(ctx.state)
    if current is not None and current != endpoint:
        return _finish(ctx, log, 13, f"The agent is registered with another configuration "
                       f"server ({current}); unregister it first.")
    if cs_type == "CSLegacy":
        if not _ENDPOINT.match(endpoint):
            return _finish(ctx, log, 14, f"Invalid CS endpoint: {endpoint}")
        problem = _check_passphrase(ctx, passphrase_path)
        if problem is not None:
            products.configuration_failed(ctx.state)
            return _finish(ctx, log, 14, f"{problem}: {passphrase_path}")
    if not _cs_answers(ctx, endpoint):
        products.configuration_failed(ctx.state)
        return _finish(ctx, log, 17, f"Registration with {endpoint}:443 failed: the "
                       "configuration server did not answer.")
    if current == endpoint:
        return _finish(ctx, log, 0, f"Already registered with {endpoint}.")
    products.register_ua(ctx.state, endpoint, cs_type)
    products.start_ua_services(ctx.state, ctx.lab)
    return _finish(ctx, log, 0, f"Registration with configuration server {endpoint} succeeded.")


def _unified_agent(ctx: Context, meta: dict[str, Any], argv: list[str]) -> Outcome:
    version = str(meta.get("version", catalog.ASR_VERSION))
    key = catalog.version_key(version)
    found = _switches(argv, _UA_ONE_STEP_SWITCHES if key < ONE_STEP_REMOVED else _UA_SWITCHES)
    role = found.get("role", "")
    if role.lower() not in ("agent", "ms"):
        raise _BadArguments(2, f"/Role must be \"Agent\" or \"MS\", not \"{role}\"")
    cs_type = {"cslegacy": "CSLegacy", "csprime": "CSPrime"}.get(
        found.get("cstype", "CSLegacy").lower())
    if cs_type is None:
        raise _BadArguments(2, "/CSType must be CSLegacy or CSPrime")
    if found.get("platform", "VmWare").lower() not in ("vmware", "azure"):
        raise _BadArguments(2, "/Platform must be VmWare or Azure")
    one_step = "csendpoint" in found
    if role.lower() == "agent" and not (one_step and "passphrasefilepath" in found):
        raise _BadArguments(2, "/Role Agent needs /CSEndpoint and /PassphraseFilePath")
    location = found.get("installlocation", products.UA_DEFAULT_LOCATION).rstrip("\\")
    if ctx.lab.installer_exit_code is not None:
        code = ctx.lab.installer_exit_code
        if code in (0, *REBOOT_CODES):
            _lay_down(ctx, version, location, role, found)
            if one_step:
                products.register_ua(ctx.state, found["csendpoint"], cs_type)
            if code != 0:
                ctx.state.set_pending("pending_file_rename", f"{location}\\agent\\svagents.exe")
        else:
            _msi_log(ctx, version, code)
        return _finish(ctx, UA_LOG, code, f"Installer finished with forced exit code {code}.")
    if ctx.lab.install_running:
        return _finish(ctx, UA_LOG, 41, "Another installation is in progress.")
    if ctx.state.data["os"] == "2008r2":
        return _finish(ctx, UA_LOG, 42, "This operating system is not supported.")
    if products.stale_driver(ctx.state):
        return _finish(ctx, UA_LOG, 62, "The InDskFlt driver of an earlier installation is "
                       "still loaded without its service; restart the machine and run the "
                       "installer again.")
    installed = products.installed_ua(ctx.state)
    if installed is not None and catalog.version_key(installed[0]) > key:
        return _finish(ctx, UA_LOG, 15, f"A newer version ({installed[0]}) is installed: "
                       "downgrade is not supported.")
    if installed is None or installed[0] != version:
        if ctx.state.data["fs"]["free_bytes"] < products.UA_MIN_FREE:
            return _finish(ctx, UA_LOG, 99, "Prerequisite validation failed: less than 1 GB "
                           "free on the system drive.")
        _lay_down(ctx, version, location, role, found)
        message = f"Mobility service {version} installed in {location}."
    else:
        message = f"Mobility service {version} is already installed."
    if not one_step:
        return _finish(ctx, UA_LOG, 0, message)
    _log(ctx, UA_LOG, [message])
    outcome = _register(ctx, found["csendpoint"], found.get("passphrasefilepath"), cs_type,
                        UA_LOG)
    outcome.stdout.insert(0, message)
    return outcome


def _msi_log(ctx: Context, version: str, code: int) -> None:
    """The MSI's own verbose log, which a failed install leaves beside the installer's."""
    _log(ctx, MSI_LOG, [f"=== Verbose logging started: UnifiedAgentMSI {version} ===",
                        "Action start InstallValidate.",
                        f"MSI (s) Product: {products.UA_NAME} -- Installation failed.",
                        f"MainEngineThread is returning {1603 if code else 0}"])


def _lay_down(ctx: Context, version: str, location: str, role: str,
              found: dict[str, str]) -> None:
    """What a successful UnifiedAgent.exe run leaves: the agent, its started services and, on
    the VMware platform from 9.7 on, the bundled Azure VM agent with its services stopped
    and disabled (they start after failover in Azure)."""
    products.install_ua(ctx.state, version, location, role)
    products.start_ua_services(ctx.state, ctx.lab)
    bundles_vm_agent = catalog.version_key(version) >= VM_AGENT_BUNDLED
    if bundles_vm_agent and found.get("platform", "VmWare").lower() == "vmware":
        if products.vm_agent_version(ctx.state) is None:
            products.install_vm_agent(ctx.state, ctx.lab, catalog.VM_AGENT_VERSION)
        products.disable_vm_agent_services(ctx.state)


def _configurator(ctx: Context, argv: list[str]) -> Outcome:
    found = _switches(argv, _CONFIGURATOR_SWITCHES)
    cs_type = {"cslegacy": "CSLegacy", "csprime": "CSPrime"}.get(
        found.get("cstype", "CSLegacy").lower())
    if cs_type is None:
        raise _BadArguments(2, "/CSType must be CSLegacy or CSPrime")
    if cs_type == "CSLegacy" and not ("csendpoint" in found and "passphrasefilepath" in found):
        raise _BadArguments(2, "/CSEndPoint and /PassphraseFilePath are required")
    if cs_type == "CSPrime" and "sourceconfigfilepath" not in found:
        raise _BadArguments(2, "/SourceConfigFilePath is required with /CSType CSPrime")
    if found.get("credentiallessdiscovery", "false").lower() not in ("true", "false"):
        raise _BadArguments(2, "/CredentialLessDiscovery must be true or false")
    if ctx.lab.configurator_exit_code is not None:
        code = ctx.lab.configurator_exit_code
        if code in (0, 3010):
            products.register_ua(ctx.state, found.get("csendpoint", ctx.lab.cs_endpoint), cs_type)
            products.start_ua_services(ctx.state, ctx.lab)
        else:
            products.configuration_failed(ctx.state)
        return _finish(ctx, CONFIGURATOR_LOG, code, f"Configurator finished with forced exit "
                       f"code {code}.")
    if cs_type == "CSPrime":
        config = found["sourceconfigfilepath"]
        try:
            parsed = json.loads(ctx.state.fs.read(config).decode("utf-8-sig"))
        except (RemoteOpFailed, ValueError):
            parsed = None
        if not isinstance(parsed, dict):
            products.configuration_failed(ctx.state)
            return _finish(ctx, CONFIGURATOR_LOG, 19, f"Invalid source config file: {config}")
        return _register(ctx, ctx.lab.cs_endpoint, None, cs_type, CONFIGURATOR_LOG)
    return _register(ctx, found["csendpoint"], found["passphrasefilepath"], cs_type,
                     CONFIGURATOR_LOG)


def _bundle(ctx: Context, meta: dict[str, Any], argv: list[str]) -> Outcome:
    target = next((a[3:] for a in argv if a.lower().startswith("/x:")), "")
    if not target:
        return Outcome(1, stderr=["Usage: /q /x:<directory> extracts the package."])
    ctx.state.fs.make_dirs(target)
    ctx.state.fs.write(f"{target.rstrip(chr(92))}\\UnifiedAgent.exe",
                       catalog.unified_agent(str(meta["version"])))
    return Outcome(0, stdout=[f"Extracted UnifiedAgent.exe to {target}"])


def run_asr(ctx: Context, meta: dict[str, Any], argv: list[str]) -> Outcome:
    """Run one of the ASR programs (`unified-agent`, `configurator`, `asr-bundle`)."""
    program = meta["program"]
    try:
        if program == "unified-agent":
            return _unified_agent(ctx, meta, argv)
        if program == "configurator":
            if products.installed_ua(ctx.state) is None:
                return Outcome(1, stderr=["The Mobility service is not installed."])
            return _configurator(ctx, argv)
        return _bundle(ctx, meta, argv)
    except _BadArguments as bad:
        log = CONFIGURATOR_LOG if program == "configurator" else UA_LOG
        return _finish(ctx, log, bad.code, str(bad))
