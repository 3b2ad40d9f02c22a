"""The `lab:` host var: every key a lab host understands, its type and default.

Keys that shape the STARTING state apply only when the host's state file is made fresh (the
first run, or after `pushinstall lab reset`); the others apply on every run. docs/lab.md
explains each with the behaviour it triggers.

Starting state: `os` (2008r2 2012 2012r2 2016 2019 2022), `hostname`, `pending_reboot` (bool or
signal names), `installed_version`, `registered_to`, `vm_agent_version`, `disk_free_bytes`,
`disk_total_bytes`.
Network and CS: `cs_endpoint`, `cs_passphrase`, `cs_port_closed`, `open_ports` (HOST:PORT),
`share_requires_credential` (default true: a remote session's copy from the share is denied,
the double hop), `share_password`, `share_denies_machine_account`, `http_503` (first N web
downloads).
PowerShell 3.0 shells: `max_memory_per_shell_mb` (the WinRM quota), `hotfix_kb2842230`.
Installers: `installer_exit_code`, `configurator_exit_code`, `msi_exit_code`,
`installer_seconds`, `install_running`.
Services: `service_stops_after_start`, `services_that_wont_start` (names or display names).
Connection: `latency_ms`, `reboot_seconds`, `unreachable`, `bad_credentials`,
`refuse_first_connects`, `drop_connection_on` and `dark_after` (op names), `winrs_refused`
(`true`: every WinRS cmd shell; `receiver`: the push receiver's command).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from pushinstall.errors import InputError
from pushinstall.source import did_you_mean, kind_of

OS_RELEASES = ("2008r2", "2012", "2012r2", "2016", "2019", "2022")
PENDING_SIGNALS = (
    "pending_file_rename", "pending_file_rename2", "component_based_servicing",
    "windows_update", "computer_rename", "update_exe_volatile", "domain_join",
)
GIB = 1024**3
WINRS_REFUSALS = ("receiver",)    # the string values of `winrs_refused` besides true/false


@dataclass
class LabVars:
    """A lab host's settings, parsed from its `lab:` mapping (see `parse_lab_vars`)."""

    # starting state (fresh state file only)
    os: str = "2019"
    hostname: str | None = None
    pending_reboot: bool | list[str] = False
    installed_version: str | None = None
    registered_to: str | None = None
    vm_agent_version: str | None = None
    disk_free_bytes: int = 50 * GIB
    disk_total_bytes: int = 127 * GIB
    # the simulated network and configuration server
    cs_endpoint: str = "10.0.0.115"
    cs_passphrase: str = "lab-passphrase"
    cs_port_closed: bool = False
    open_ports: list[str] = field(default_factory=list)
    share_requires_credential: bool = True
    share_password: str = "lab-share-password"
    share_denies_machine_account: bool = False
    max_memory_per_shell_mb: int = 1024
    hotfix_kb2842230: bool = False
    http_503: int = 0
    # installers
    installer_exit_code: int | None = None
    configurator_exit_code: int | None = None
    msi_exit_code: int | None = None
    installer_seconds: float = 0.0
    install_running: bool = False
    # services
    service_stops_after_start: list[str] = field(default_factory=list)
    services_that_wont_start: list[str] = field(default_factory=list)
    # connection
    latency_ms: int = 0
    reboot_seconds: float = 2.0
    unreachable: bool = False
    bad_credentials: bool = False
    refuse_first_connects: int = 0
    drop_connection_on: list[str] = field(default_factory=list)
    dark_after: list[str] = field(default_factory=list)   # the link stalls after these ops
    winrs_refused: bool | str = False     # true (cmd shells) or "receiver" (its command)


_SECRET_KEYS = frozenset({"cs_passphrase", "share_password"})


def _expected(name: str) -> tuple[type, ...]:
    names = {"bool": bool, "int": int, "float": float, "str": str, "list[str]": list}
    parts = str(LabVars.__dataclass_fields__[name].type).split("|")
    return tuple(names[p.strip()] for p in parts if p.strip() in names)


def _check(name: str, value: Any) -> Any:
    kinds = _expected(name)
    if value is None and "None" in str(LabVars.__dataclass_fields__[name].type):
        return None
    if isinstance(value, bool) and bool not in kinds:
        raise InputError(f"lab var {name!r} is {_shown(name, value)}", expected=_describe(kinds))
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kinds):
        raise InputError(f"lab var {name!r} is {_shown(name, value)}", expected=_describe(kinds))
    if (isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0
            and not name.endswith("_exit_code")):   # Windows exit codes may be negative
        raise InputError(f"lab var {name!r} is {_shown(name, value)}",
                         expected=f"{_describe(kinds)} of 0 or more")
    if isinstance(value, list) and not all(isinstance(item, str) for item in value):
        raise InputError(f"lab var {name!r} holds something else than strings",
                         expected="a list of strings")
    return value


def _shown(name: str, value: Any) -> str:
    """A wrong value in an error: its kind only for a secret, a list or a mapping."""
    if name in _SECRET_KEYS or isinstance(value, (dict, list, bool)) or value is None:
        return kind_of(value)
    return f"'{value}'"


def _describe(kinds: tuple[type, ...]) -> str:
    return " or ".join({bool: "a boolean", int: "an integer", float: "a number",
                        str: "a string", list: "a list of strings"}[k] for k in kinds)


def parse_lab_vars(raw: Any) -> LabVars:
    """`raw` (the host's `lab:` var, may be None) as LabVars; InputError on an unknown key,
    a value of the wrong type, or an unknown OS release or pending-reboot signal."""
    if raw is None:
        return LabVars()
    if not isinstance(raw, dict):
        raise InputError(f"the lab var is {kind_of(raw)}", expected="a mapping of lab settings")
    known = [f.name for f in fields(LabVars)]
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in known:
            raise InputError(f"unknown lab var {name!r}{did_you_mean(str(name), known)}",
                             expected="one of: " + ", ".join(sorted(known)))
        values[name] = _check(name, value)
    lab = LabVars(**values)
    if lab.os not in OS_RELEASES:
        raise InputError(f"lab var 'os' is '{lab.os}'", expected="one of: "
                         + ", ".join(OS_RELEASES))
    if isinstance(lab.pending_reboot, list):
        unknown = set(lab.pending_reboot) - set(PENDING_SIGNALS)
        if unknown:
            raise InputError(f"unknown pending_reboot signal {sorted(unknown)[0]!r}",
                             expected="one of: " + ", ".join(PENDING_SIGNALS))
    if isinstance(lab.winrs_refused, str) and lab.winrs_refused not in WINRS_REFUSALS:
        raise InputError(f"lab var 'winrs_refused' is '{lab.winrs_refused}'",
                         expected="true, false or " + ", ".join(WINRS_REFUSALS))
    for port in lab.open_ports:
        host, _, number = port.rpartition(":")
        if not host or not number.isdigit():
            raise InputError(f"lab var 'open_ports' holds {port!r}", expected="HOST:PORT")
    return lab


def pending_signals(lab: LabVars) -> list[str]:
    """The pending-reboot signals the starting state sets."""
    if isinstance(lab.pending_reboot, list):
        return list(lab.pending_reboot)
    return ["pending_file_rename"] if lab.pending_reboot else []
