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
from pushinstall.engine import Backoff, RunOptions, TransportFactory, new_run_id, run_fleet
from pushinstall.errors import InputError
from pushinstall.events import Sink
from pushinstall.model import Host, Playbook
from pushinstall.paths import state_dir
from pushinstall.report.console_live import make_console
from pushinstall.report.jsonl import JsonlSink
from pushinstall.secret import Secret

SHIPPED_PLAYBOOK = "asr-mobility.yml"
DEFAULT_KEEP_RUNS = 100


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
        make_console(verbose=int(options.get("verbose") or 0), diff=bool(options.get("diff")),
                     color=not options.get("no_color")),
        JsonlSink(state / "runs" / f"{run_id}.jsonl"),
    ]
    if options.get("jsonl_path"):
        sinks.append(JsonlSink(options["jsonl_path"]))
    if options.get("report_dir"):
        Path(options["report_dir"]).mkdir(parents=True, exist_ok=True)
        sinks.append(ReportFiles(options["report_dir"], history_path(state)))
    state.mkdir(parents=True, exist_ok=True)
    sinks.append(History(history_path(state)))
    return sinks


def _run(hosts: list[Host], playbook: Playbook, run_options: RunOptions,
         options: dict[str, Any], lock_key: tuple[list[str], str] | None = None) -> int:
    """Run under the lock of `lock_key` (inventories, playbook), then prune old run logs."""
    from pushinstall.lock import RunLock, lock_path

    run_options.run_id = run_options.run_id or new_run_id()
    inventories, playbook_path = lock_key or ([], playbook.path or playbook.name)
    lock = RunLock(lock_path(state_dir(), inventories, playbook_path),
                   float(options.get("wait_lock") or 0), f"run {run_options.run_id}")
    factory: TransportFactory | None = None
    if any(host.connection.transport == "lab" for host in hosts):
        # the lab is a place, wired in here: the engine gets its factory and process hooks
        from pushinstall.lab.connect import PROCESS_HOOKS, make_transport

        factory, run_options.hooks = make_transport, PROCESS_HOOKS
    with lock:
        summary = run_fleet(hosts, playbook, run_options,
                            build_sinks(run_options.run_id, options),
                            _tracing_factory(hosts, playbook, run_options.verbose, factory))
    prune_runs(state_dir() / "runs", options.get("keep_runs"))
    return summary.exit_code


def _tracing_factory(hosts: list[Host], playbook: Playbook, verbose: int,
                     base: TransportFactory | None) -> TransportFactory | None:
    """At -vv and more, `base` (None: the engine's own factory) wrapped in transports that
    trace every op to stderr (secrets masked); else `base` itself."""
    if verbose < 2:
        return base
    from pushinstall.engine.support import collect_secrets
    from pushinstall.secret import Redactor
    from pushinstall.transports.factory import make_transport
    from pushinstall.transports.trace import TracingTransport
    from pushinstall.validate import needed_secrets

    redactor = Redactor()
    collect_secrets(redactor, needed_secrets(hosts, playbook))

    def factory(host: Host) -> Any:
        return TracingTransport((base or make_transport)(host), host.name, verbose, redactor)

    return factory


def prune_runs(folder: Path, keep: int | None) -> list[Path]:
    """Remove all but the newest `keep` run logs (run ids sort by time); the removed paths."""
    if keep is None:
        keep = DEFAULT_KEEP_RUNS
    logs = sorted(folder.glob("*.jsonl"))
    doomed = logs[:-keep] if keep else logs
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


def run_command(mode: str, options: dict[str, Any]) -> int:
    """`pushinstall run` / `pushinstall check` with the CLI's options; returns the exit code."""
    from pushinstall.inventory import load_inventory, select_hosts
    from pushinstall.playbook import load_playbook, parse_extra_vars
    from pushinstall.validate import check_hosts

    extra_vars = parse_extra_vars(list(options.get("extra_vars") or []))
    inventory = load_inventory(list(options["inventories"]))
    playbook = load_playbook(options["playbook"], extra_vars)
    hosts = select_hosts(inventory, playbook.hosts, last_run_limit(options.get("limit")),
                         pattern_location=getattr(playbook, "hosts_location", None))
    start_at_step(playbook, options.get("start_at_step"))
    if options.get("list_hosts") or options.get("list_steps"):
        return list_only(hosts, playbook, bool(options.get("list_hosts")))
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
        backoff=backoff(options),
    )
    return _run(hosts, playbook, run_options, options,
                (list(options["inventories"]), options["playbook"]))


def backoff(options: dict[str, Any]) -> Backoff:
    """The retry backoff: `--retry-delay` (PUSHINSTALL_RETRY_DELAY) is its first wait."""
    delay = options.get("retry_delay")
    return Backoff() if delay is None else Backoff(initial=delay)


def start_at_step(playbook: Playbook, name: str | None) -> None:
    """`--start-at-step NAME`: drop the steps before NAME (an unknown name is exit 5)."""
    if not name:
        return
    names = [step.name for step in playbook.steps]
    if name not in names:
        from pushinstall.inventory.limit import COMMAND_LINE
        from pushinstall.source import did_you_mean

        raise InputError(f"--start-at-step: no step '{name}' in {playbook.path}"
                         f"{did_you_mean(name, names)}", COMMAND_LINE, "a step name from "
                         "'pushinstall run --list-steps'")
    playbook.steps = playbook.steps[names.index(name):]


def list_only(hosts: list[Host], playbook: Playbook, list_hosts: bool) -> int:
    """`--list-hosts` / `--list-steps`: print, touch nothing, exit 0."""
    import sys

    if list_hosts:
        lines = [f"hosts ({len(hosts)}):", *(f"  {host.name}" for host in hosts)]
    else:
        lines = [f"steps of {playbook.path or playbook.name} ({len(playbook.steps)}):"]
        lines += [f"  {number}. {step.name}  [{step.type}]"
                  + (f"  when: {step.when}" if step.when else "")
                  for number, step in enumerate(playbook.steps, start=1)]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


LAST_RUN_TERMS = {"@failed": "failed", "@drifted": "drifted", "@unreachable": "unreachable"}


def last_run_limit(limit: str | None) -> str | None:
    """`--limit @failed` (`@drifted`, `@unreachable`): the hosts that ended so in the newest
    recorded run whose mode can end a host so (`history.LAST_RUN_KINDS`: an apply for
    failed, a check for drifted, any run for unreachable); a note on stderr names the run by
    id, mode and time. A file of that name in the working folder wins, as `@file` always
    meant; the note then says so."""
    if not limit:
        return limit
    import sys

    from pushinstall.inventory.limit import COMMAND_LINE, split_terms
    from pushinstall.report.history import LAST_RUN_KINDS, history_path, iso_time, last_run_hosts

    terms = []
    for term in split_terms(limit):
        prefix = term[0] if term[0] in "!&" else ""
        body = term[len(prefix):]
        status = LAST_RUN_TERMS.get(body)
        if status is None:
            terms.append(term)
        elif Path(body[1:]).exists():
            sys.stderr.write(f"note: --limit {body} reads the file ./{body[1:]} (it exists); "
                             f"the last run's {status} hosts are not used\n")
            terms.append(term)
        else:
            picked = last_run_hosts(history_path(state_dir()), status)
            if picked is None:
                raise InputError(f"--limit {body}: no run is recorded yet that can find "
                                 f"{status} hosts: {body} reads {LAST_RUN_KINDS[status]}",
                                 COMMAND_LINE, "such a run before it, or a host pattern")
            names, run = picked.hosts, (f"run {picked.run_id} ({picked.mode}, "
                                        f"{iso_time(picked.started)})")
            sys.stderr.write(f"note: --limit {body}: {len(names)} {status} host(s) of {run}, "
                             f"the newest {LAST_RUN_KINDS[status]}\n")
            if not names and not prefix:
                raise InputError(f"--limit {body}: {run} had no {status} host",
                                 COMMAND_LINE, "nothing to re-run; or another host pattern")
            # '&@failed' with none failed must select nothing: '&!all' does
            terms += [prefix + name for name in names] or (["!all"] if prefix == "&" else [])
    return ",".join(terms)


def resolve_run_secrets(hosts: list[Host], playbook: Playbook) -> None:
    """Read every secret the run will need (passwords, vars the playbook names) before any
    host is contacted: a missing env var or file, or a prompt without a TTY, is exit 5."""
    from pushinstall.inventory.secrets import resolve_secrets
    from pushinstall.validate import needed_secrets

    resolve_secrets(needed_secrets(hosts, playbook))


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
        backoff=backoff(options),
    )
    # the same host installed twice at once is what the lock is for: key it by the hosts
    return _run(hosts, playbook, run_options, options,
                ([f"host:{host.name}" for host in hosts],
                 playbook.path or str(shipped_playbook())))
