"""The programs a lab host can run, with the real installers' switches and exit codes.

A program is known by its file's content (the `catalog` blob header), so a copied or renamed
installer still runs as itself. Arguments arrive as the argv the program would get: the
`run_process` argument list joined by the Windows quoting rules and split back, so quoting
mistakes would show here as on Windows. Switches are case-insensitive.

UnifiedAgent.exe exit codes: 0 success; 3010 / 1641 success, reboot needed (the lab leaves
a pending-reboot signal; it does not restart by itself); 98 success with warnings (also leaves
a reboot pending); 1 failure (a newer version is installed); 2 a required switch is missing
or has a bad value; 3 an unknown switch; 13 registered to another configuration server; 14
invalid passphrase (file missing or wrong content) or malformed CS endpoint; 17 registration
failed (the CS endpoint does not answer on 443: another address than the lab's `cs_endpoint`,
or `cs_port_closed`); 41 another installation is running (`install_running`); 42 unsupported
OS (`os: 2008r2`); 62 a restart is pending; 99 prerequisite validation failed (less than 1 GiB
free). The same version already installed answers 0 and changes nothing. The configurator
shares 2, 3, 13, 14 and 17. msiexec: 0, 3010, 1603 fatal error, 1605 unknown product, 1618
another installation running, 1619 package missing, 1620 not a package, 1638 another version
installed, 1639 bad command line; without `/q*` it waits on an invisible dialog forever.
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
REBOOT_CODES = frozenset({3010, 1641, 98})
UA_LOG = "C:\\ProgramData\\ASRSetupLogs\\ASRUnifiedAgentInstaller.log"
CONFIGURATOR_LOG = "C:\\ProgramData\\ASRSetupLogs\\ASRUnifiedAgentConfigurator.log"
_UA_SWITCHES = {"role": True, "installlocation": True, "platform": True, "silent": False,
                "cstype": True, "csendpoint": True, "passphrasefilepath": True}
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
    """`/Name value` and `/Flag` pairs by lowercase name; 3 for an unknown one, 2 for a
    switch without its value."""
    found: dict[str, str] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        name = token[1:].lower() if token.startswith(("/", "-")) else None
        if name is None or name not in known:
            raise _BadArguments(3, f"Invalid argument: {token}")
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


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version))


def _unified_agent(ctx: Context, meta: dict[str, Any], argv: list[str]) -> Outcome:
    version = str(meta.get("version", catalog.ASR_VERSION))
    found = _switches(argv, _UA_SWITCHES)
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
            products.install_ua(ctx.state, version, location, role)
            products.start_ua_services(ctx.state, ctx.lab)
            if one_step:
                products.register_ua(ctx.state, found["csendpoint"], cs_type)
            if code != 0:
                ctx.state.set_pending("pending_file_rename", f"{location}\\agent\\svagents.exe")
        return _finish(ctx, UA_LOG, code, f"Installer finished with forced exit code {code}.")
    if ctx.lab.install_running:
        return _finish(ctx, UA_LOG, 41, "Another installation is in progress.")
    if ctx.state.data["os"] == "2008r2":
        return _finish(ctx, UA_LOG, 42, "This operating system is not supported.")
    if any(ctx.state.pending_signals().values()):
        return _finish(ctx, UA_LOG, 62, "A restart is pending from a previous installation "
                       "or update. Restart the machine and run the installer again.")
    installed = products.installed_ua(ctx.state)
    if installed is not None and _version_key(installed[0]) > _version_key(version):
        return _finish(ctx, UA_LOG, 1, f"A newer version ({installed[0]}) is installed.")
    if installed is None or installed[0] != version:
        if ctx.state.data["fs"]["free_bytes"] < products.UA_MIN_FREE:
            return _finish(ctx, UA_LOG, 99, "Prerequisite validation failed: less than 1 GB "
                           "free on the system drive.")
        products.install_ua(ctx.state, version, location, role)
        products.start_ua_services(ctx.state, ctx.lab)
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
        if code == 0:
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
            return _finish(ctx, CONFIGURATOR_LOG, 14, f"Invalid source config file: {config}")
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
