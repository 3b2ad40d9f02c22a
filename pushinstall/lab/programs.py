"""Every program a lab host runs: the ASR installers (installers.py) and the system tools.

System tools, minimal on purpose: `msiexec.exe` (`/i PACKAGE`, `/x PACKAGE|{GUID}`, `/q*`,
`/norestart`, `/l* LOG`, `PROPERTY=VALUE`), `cmd.exe /c exit N` and `/c echo TEXT`,
`powershell.exe -Command exit N` (the lab runs no other PowerShell), `shutdown.exe /r`
(restarts the host) and `/a`, `sc.exe create|delete|query NAME` (`binPath=`, `DisplayName=`,
`start=`). Anything else a lab host was asked to run fails the way Windows does.
"""

from __future__ import annotations

import contextlib
from typing import Any

from pushinstall.errors import RemoteOpFailed
from pushinstall.lab import catalog, products
from pushinstall.lab.installers import ASR_PROGRAMS, Context, Outcome, run_asr

_QUIET = ("/q", "/qn", "/quiet", "/passive", "/qb", "/qr", "/qf")
_SC_MODES = {"auto": "Automatic", "delayed-auto": "AutomaticDelayed", "demand": "Manual",
             "disabled": "Disabled"}


def _msi_log(ctx: Context, log: str | None, lines: list[str]) -> None:
    if not log:
        return
    with contextlib.suppress(RemoteOpFailed):  # a full disk loses the log, as on Windows
        if "\\" in log:
            ctx.state.fs.make_dirs(log.rsplit("\\", 1)[0])
        ctx.state.fs.write(log, "".join(f"{line}\r\n" for line in lines).encode("utf-8"))


def _msiexec(ctx: Context, argv: list[str]) -> Outcome:
    action, package, log = "", "", None
    i = 0
    while i < len(argv):
        token = argv[i].lower()
        if token in ("/i", "/package", "/x", "/uninstall") and i + 1 < len(argv):
            action, package = ("install" if token in ("/i", "/package") else "uninstall",
                               argv[i + 1])
            i += 2
        elif token.startswith("/l") and i + 1 < len(argv):
            log = argv[i + 1]
            i += 2
        elif token in _QUIET or token == "/norestart" or ("=" in token and "/" not in token[:1]):
            i += 1
        else:
            return Outcome(1639, stderr=[f"Invalid command line argument: {argv[i]}"])
    if not action:
        return Outcome(1639, stderr=["Invalid command line: /i or /x is required."])
    if ctx.lab.install_running:
        _msi_log(ctx, log, ["Another installation is in progress.", "Exit code: 1618"])
        return Outcome(1618)
    if action == "uninstall":
        return _msi_uninstall(ctx, package, log)
    if not ctx.state.fs.is_file(package):
        _msi_log(ctx, log, [f"Cannot open package {package}.", "Exit code: 1619"])
        return Outcome(1619)
    meta = catalog.identify(ctx.state.fs.read(package))
    if meta is None or meta["program"] != "vm-agent-msi":
        _msi_log(ctx, log, [f"{package} is not a Windows Installer package.", "Exit code: 1620"])
        return Outcome(1620)
    version = str(meta["version"])
    code = ctx.lab.msi_exit_code
    installed = products.vm_agent_version(ctx.state)
    if code is None and installed is not None and installed != version:
        code = 1638
    if code is None or code in (0, 3010):
        try:
            if installed != version:
                products.install_vm_agent(ctx.state, ctx.lab, version)
        except RemoteOpFailed:
            code = 1603
        else:
            if code == 3010:
                ctx.state.set_pending("pending_file_rename", "C:\\WindowsAzure\\Packages")
    code = code or 0
    _msi_log(ctx, log, [f"Product: Windows Azure VM Agent - {version} -- Installation "
                        f"{'completed successfully' if code in (0, 3010) else 'failed'}.",
                        f"Exit code: {code}"])
    return Outcome(code)


def _msi_uninstall(ctx: Context, package: str, log: str | None) -> Outcome:
    target = package.upper()
    if ctx.state.fs.is_file(package):
        meta = catalog.identify(ctx.state.fs.read(package)) or {}
        target = products.VM_AGENT_PRODUCT_ID if meta.get("program") == "vm-agent-msi" else ""
    if target == products.VM_AGENT_PRODUCT_ID and products.vm_agent_version(ctx.state):
        products.uninstall_vm_agent(ctx.state)
    elif target == products.UA_PRODUCT_ID and products.installed_ua(ctx.state):
        products.uninstall_ua(ctx.state)
        # the InDskFlt driver is loaded: its file goes at the restart, which the MSI asks for
        ctx.state.set_pending("pending_file_rename", products.DRIVER_FILE)
        _msi_log(ctx, log, [f"Removed {target}.", "The InDskFlt driver is removed at the next "
                            "restart.", "Exit code: 3010"])
        return Outcome(3010)
    else:
        _msi_log(ctx, log, [f"{package} is not installed.", "Exit code: 1605"])
        return Outcome(1605)
    _msi_log(ctx, log, [f"Removed {target}.", "Exit code: 0"])
    return Outcome(0)


def _cmd(argv: list[str]) -> Outcome:
    if len(argv) >= 2 and argv[0].lower() == "/c":
        verb = argv[1].lower()
        if verb == "exit":
            rest = argv[2] if len(argv) > 2 else "0"
            return Outcome(int(rest) if rest.lstrip("-").isdigit() else 0)
        if verb == "echo":
            return Outcome(0, stdout=[" ".join(argv[2:])])
        return Outcome(1, stderr=[f"'{argv[1]}' is not recognized as an internal or external "
                                  "command,", "operable program or batch file."])
    return Outcome(0, stdout=["Microsoft Windows [Version 10.0.17763.5576]"])


def _powershell(argv: list[str]) -> Outcome:
    lowered = [a.lower() for a in argv]
    if "-command" in lowered:
        words = " ".join(argv[lowered.index("-command") + 1:]).split()
        if len(words) == 2 and words[0].lower() == "exit" and words[1].lstrip("-").isdigit():
            return Outcome(int(words[1]))
    return Outcome(1, stderr=["pushinstall lab: powershell.exe here runs only "
                              "'-Command exit N'; use the script op for PowerShell."])


def _shutdown(ctx: Context, argv: list[str]) -> Outcome:
    lowered = [a.lower() for a in argv]
    if "/a" in lowered:
        return Outcome(1116, stderr=["Unable to abort the system shutdown because no shutdown "
                                     "was in progress.(1116)"])
    if "/r" in lowered:
        ctx.reboot()
    return Outcome(0)


def _sc(ctx: Context, argv: list[str]) -> Outcome:
    if len(argv) < 2:
        return Outcome(1639, stdout=["DESCRIPTION: SC is a command line program used for "
                                     "communicating with the Service Control Manager."])
    verb, name = argv[0].lower(), argv[1]
    options = {argv[i].lower(): argv[i + 1] for i in range(2, len(argv) - 1, 2)}
    record = ctx.state.find_service(name)
    if verb == "create":
        if record is not None:
            return Outcome(1073, stdout=["[SC] CreateService FAILED 1073:", "",
                                         "The specified service already exists."])
        if "binpath=" not in options:
            return Outcome(1639, stdout=["[SC] CreateService: binPath= is required"])
        mode = _SC_MODES.get(options.get("start=", "demand").lower(), "Manual")
        ctx.state.add_service(name, options.get("displayname=", name), mode,
                              options["binpath="])
        return Outcome(0, stdout=["[SC] CreateService SUCCESS"])
    if record is None:
        return Outcome(1060, stdout=["[SC] OpenService FAILED 1060:", "",
                                     "The specified service does not exist as an installed "
                                     "service."])
    if verb == "delete":
        ctx.state.remove_service(record["name"])
        return Outcome(0, stdout=["[SC] DeleteService SUCCESS"])
    return Outcome(0, stdout=[f"SERVICE_NAME: {record['name']}",
                              f"        STATE              : {record['status'].upper()}"])


def run(ctx: Context, meta: dict[str, Any], argv: list[str]) -> Outcome:
    """Run the program `meta` (a catalog header) stands for, with `argv`."""
    program = meta["program"]
    if program in ASR_PROGRAMS:
        return run_asr(ctx, meta, argv)
    if program == "msiexec":
        return _msiexec(ctx, argv)
    if program == "cmd":
        return _cmd(argv)
    if program == "powershell":
        return _powershell(argv)
    if program == "shutdown":
        return _shutdown(ctx, argv)
    if program == "sc":
        return _sc(ctx, argv)
    # services' own executables and packages are not meant to be started by hand
    return Outcome(1, stderr=[f"{program} cannot be run this way."])
