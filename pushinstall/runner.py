"""What `pushinstall run`, `check` and `install` do between parsing options and exiting.

Load the inventory and the playbook, select hosts, build the sinks, run the fleet, return the
exit code. Every run leaves its JSONL log in `<state dir>/runs/<run_id>.jsonl` (flushed per
event, so a killed run keeps what happened) and a row in the history database.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import pushinstall
from pushinstall.engine import RunOptions, TransportFactory, new_run_id, run_fleet
from pushinstall.errors import InputError
from pushinstall.events import Sink
from pushinstall.model import Host, Playbook
from pushinstall.paths import state_dir
from pushinstall.report.console import ConsoleSink
from pushinstall.report.jsonl import JsonlSink
from pushinstall.secret import Secret

SHIPPED_PLAYBOOK = "asr-mobility.yml"


def build_sinks(run_id: str, options: dict[str, Any]) -> list[Sink]:
    """Console, the run's own JSONL log, `--jsonl`, `--report-dir` files, and the history.

    A log, report or state folder that cannot be written is invalid input (exit 5), found
    before any host is touched rather than lost at the end."""
    try:
        return _sinks(run_id, options)
    except OSError as error:
        from pushinstall.inventory.limit import COMMAND_LINE

        raise InputError(f"cannot write '{error.filename}': {error.strerror}", COMMAND_LINE,
                         "a writable --jsonl, --report-dir and PUSHINSTALL_STATE_DIR") from None


def _sinks(run_id: str, options: dict[str, Any]) -> list[Sink]:
    from pushinstall.report.files import ReportFiles
    from pushinstall.report.history import History, history_path

    state = state_dir()
    sinks: list[Sink] = [
        ConsoleSink(verbose=int(options.get("verbose") or 0), diff=bool(options.get("diff"))),
        JsonlSink(state / "runs" / f"{run_id}.jsonl"),
    ]
    if options.get("jsonl_path"):
        sinks.append(JsonlSink(options["jsonl_path"]))
    if options.get("report_dir"):
        Path(options["report_dir"]).mkdir(parents=True, exist_ok=True)
        sinks.append(ReportFiles(options["report_dir"]))
    state.mkdir(parents=True, exist_ok=True)
    sinks.append(History(history_path(state)))
    return sinks


def _run(hosts: list[Host], playbook: Playbook, run_options: RunOptions,
         options: dict[str, Any]) -> int:
    run_options.run_id = run_options.run_id or new_run_id()
    sinks = build_sinks(run_options.run_id, options)
    factory: TransportFactory | None = None
    if any(host.connection.transport == "lab" for host in hosts):
        # the lab is a place, wired in here: the engine gets its factory and process hooks
        from pushinstall.lab.connect import PROCESS_HOOKS, make_transport

        factory, run_options.hooks = make_transport, PROCESS_HOOKS
    return run_fleet(hosts, playbook, run_options, sinks, factory).exit_code


def run_command(mode: str, options: dict[str, Any]) -> int:
    """`pushinstall run` / `pushinstall check` with the CLI's options; returns the exit code."""
    from pushinstall.inventory import load_inventory, select_hosts
    from pushinstall.playbook import load_playbook, parse_extra_vars
    from pushinstall.validate import check_hosts

    extra_vars = parse_extra_vars(list(options.get("extra_vars") or []))
    inventory = load_inventory(list(options["inventories"]))
    playbook = load_playbook(options["playbook"], extra_vars)
    hosts = select_hosts(inventory, playbook.hosts, options.get("limit"),
                         pattern_location=getattr(playbook, "hosts_location", None))
    check_hosts(hosts, playbook, extra_vars)
    resolve_run_secrets(hosts, playbook)
    run_options = RunOptions(
        mode=mode,
        check_mode=bool(options.get("check_mode")),
        remediate=bool(options.get("remediate")),
        forks=options.get("forks"),
        workers=options.get("workers"),
        diff=bool(options.get("diff")),
        verbose=int(options.get("verbose") or 0),
        extra_vars=extra_vars,
        limit=options.get("limit"),
    )
    return _run(hosts, playbook, run_options, options)


def resolve_run_secrets(hosts: list[Host], playbook: Playbook) -> None:
    """Read every secret the run will need (passwords, vars the playbook names) before any
    host is contacted: a missing env var or file, or a prompt without a TTY, is exit 5."""
    from pushinstall.inventory.secrets import resolve_secrets
    from pushinstall.playbook import referenced_names

    names = referenced_names(playbook)
    for host in hosts:
        resolve_secrets([host.connection.password,
                         [value for key, value in host.vars.items() if key in names]])


def shipped_playbook() -> Path:
    """`playbooks/asr-mobility.yml`: beside the package (checkout) or inside it (package data)."""
    package = Path(pushinstall.__file__).resolve().parent
    for candidate in (package / "playbooks" / SHIPPED_PLAYBOOK,
                      package.parent / "playbooks" / SHIPPED_PLAYBOOK):
        if candidate.is_file():
            return candidate
    raise InputError(f"the shipped playbook {SHIPPED_PLAYBOOK} is missing from the installation",
                     expected="reinstall pushinstall")


def _split_source(source: str) -> tuple[str, str]:
    """`\\\\srv\\share\\ua.exe` -> (`\\\\srv\\share`, `ua.exe`); URLs and local paths alike."""
    separator = "/" if "://" in source or ("\\" not in source) else "\\"
    folder, _, name = source.rstrip(separator).rpartition(separator)
    return folder, name.split("?", 1)[0]


_SHA256 = re.compile(r"[0-9A-Fa-f]{64}")
_BUNDLE_VERSION = re.compile(r"_(\d+\.\d+\.\d+\.\d+)_")
# a logon with these needs no password: refusing them would be wrong
_PASSWORDLESS_AUTH = ("certificate", "kerberos")


def _install_vars(options: dict[str, Any], bundle: str) -> dict[str, Any]:
    """asr_mode and the version pin: `--version`, else the bundle's name (9.60.0.0 in
    Microsoft-ASR_UA_9.60.0.0_...: an "at least" pin any 9.60 build meets)."""
    from pushinstall.inventory.limit import COMMAND_LINE

    found: dict[str, Any] = {"asr_mode": options.get("mode") or "classic"}
    named = _BUNDLE_VERSION.search(bundle)
    version = options.get("asr_version") or (named.group(1) if named else None)
    if version is None:
        raise InputError(f"--installer: cannot tell the version from '{bundle}'", COMMAND_LINE,
                         "--version BUILD, or a bundle named Microsoft-ASR_UA_<version>_...")
    if not re.fullmatch(r"\d+(\.\d+){1,3}", version):
        raise InputError(f"--version: '{version}' is not a version", COMMAND_LINE,
                         "a dotted version like 9.62.7172.1")
    found["asr_version"] = version
    for option in ("installer_sha256", "vm_agent_sha256"):
        value = options.get(option)
        if value is not None and not _SHA256.fullmatch(value):
            raise InputError(f"--{option.replace('_', '-')}: '{value}' is not a sha256",
                             COMMAND_LINE, "64 hexadecimal characters")
    if not options.get("installer_sha256"):
        sys.stderr.write("pushinstall: warning: no --installer-sha256: the installer is "
                         "copied and run without checking what it is\n")
    return found


def _password(options: dict[str, Any]) -> Secret | None:
    """The password from its environment variable; a real logon without one is refused
    before any attempt (a failed attempt counts toward the account's lockout)."""
    from pushinstall.inventory.limit import COMMAND_LINE

    password_env = options.get("password_env") or "PUSHINSTALL_PASSWORD"
    if os.environ.get(password_env):
        return Secret(os.environ[password_env], source=f"env {password_env}")
    if (options.get("transport") or "psrp") != "lab" and \
            (options.get("auth") or "negotiate") not in _PASSWORDLESS_AUTH:
        raise InputError(f"no password: the environment variable {password_env} is not set",
                         COMMAND_LINE, f"{password_env} set to the password of --user (or "
                         "--auth kerberos|certificate)")
    return None


def _install_hosts(options: dict[str, Any]) -> list[Host]:
    from pushinstall.inventory.connection import build_connection
    from pushinstall.inventory.limit import COMMAND_LINE
    from pushinstall.inventory.secrets import MAX_SECRET_BYTES
    from pushinstall.source import read_text

    names = options["host"] if isinstance(options["host"], (list, tuple)) else [options["host"]]
    passphrase_path = Path(options["passphrase_file"])
    try:
        passphrase = read_text(passphrase_path, MAX_SECRET_BYTES,
                               "a regular UTF-8 text file holding the passphrase").strip()
    except InputError as error:
        raise InputError(f"--passphrase-file: cannot read {passphrase_path}: "
                         f"{error.message.split(' (byte')[0]}", COMMAND_LINE,
                         error.expected) from None
    if not passphrase:
        raise InputError(f"--passphrase-file: {passphrase_path} is empty", COMMAND_LINE,
                         "a file holding the passphrase")
    password = _password(options)
    settings: dict[str, Any] = {
        "transport": options.get("transport") or "psrp",
        "auth": options.get("auth") or "negotiate",
        "tls": not options.get("no_tls"),
        "cert_validation": not options.get("no_cert_validation"),
        "username": options.get("username"),
        "password": password,
    }
    if options.get("port"):
        settings["port"] = options["port"]
    connections = {name: build_connection(name, settings, lambda _: COMMAND_LINE, COMMAND_LINE)
                   for name in dict.fromkeys(names)}
    share, bundle = _split_source(options["installer"])
    vm_agent = options.get("vm_agent") or f"{share}{'/' if '/' in share else chr(92)}" \
        "WindowsAzureVmAgent.msi"
    host_vars: dict[str, Any] = {
        "cs_endpoint": options["cs_endpoint"],
        "asr_passphrase": Secret(passphrase, source=f"file {passphrase_path}"),
        "asr_installer_share": share,
        "asr_bundle": bundle,
        "asr_installer": options["installer"],
        "asr_bundle_sha256": options.get("installer_sha256"),
        "vm_agent_source": vm_agent,
        "vm_agent_msi": _split_source(vm_agent)[1],
        "vm_agent_msi_sha256": options.get("vm_agent_sha256"),
        **_install_vars(options, bundle),
    }
    return [Host(name=name, vars=dict(host_vars), connection=connection)
            for name, connection in connections.items()]


def install_command(options: dict[str, Any]) -> int:
    """`pushinstall install HOST [HOST...]`: the shipped playbook on these hosts, no inventory
    file."""
    from pushinstall.playbook import load_playbook
    from pushinstall.validate import check_hosts

    hosts = _install_hosts(options)
    playbook = load_playbook(str(shipped_playbook()), {})
    check_hosts(hosts, playbook, {})
    run_options = RunOptions(
        mode="run",
        check_mode=bool(options.get("check_mode")),
        verbose=int(options.get("verbose") or 0),
    )
    return _run(hosts, playbook, run_options, options)
