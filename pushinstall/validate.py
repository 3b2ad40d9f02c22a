"""`pushinstall validate`: everything a run would check before touching a host, and nothing
that needs a host or a secret.

Inventory, extra vars and playbook are loaded, the hosts selected, and every step rendered for
every selected host, so an undefined variable or a value that only goes wrong for one host is
caught here. Secrets (`{env: ...}`, `{file: ...}`, `{prompt: true}`) are never read: rendering
keeps them as unrevealed `Secret`s.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pushinstall.errors import InputError, Location
from pushinstall.model import Playbook
from pushinstall.playbook import host_variables, load_playbook, parse_extra_vars, render_step
from pushinstall.playbook.templating import Renderer, check_expression

# Names a `when` may use besides the host's variables (conditions.py adds them).
WHEN_NAMES = frozenset({"facts"})
# The keys the SSH client tries when no password is given (asyncssh's defaults, ~/.ssh/).
SSH_DEFAULT_KEYS = ("id_ed25519_sk", "id_ecdsa_sk", "id_ed448", "id_ed25519", "id_ecdsa",
                    "id_rsa", "id_dsa")


def _host_location(host: Any) -> Location:
    from pushinstall.inventory.limit import COMMAND_LINE

    return getattr(host, "location", None) or COMMAND_LINE


def check_lab_vars(host: Any, seen: set[int] | None = None) -> None:
    """A host's `lab:` mapping as the lab simulator would read it at connect; a bad one is an
    `InputError` at the key at fault (or at the host when `lab` is no mapping). `seen` holds
    the ids of mappings already checked (a group's `lab:` is shared by its hosts)."""
    from pushinstall.lab.vars import parse_lab_vars

    raw = host.vars.get("lab")
    if raw is None or (seen is not None and id(raw) in seen):
        return
    try:
        parse_lab_vars(raw)
    except InputError as error:
        where = getattr(raw, "location", None) or _host_location(host)
        if isinstance(raw, dict):
            for key, value in raw.items():   # the key at fault: the one that fails alone
                try:
                    parse_lab_vars({key: value})
                except InputError:
                    where = raw.key_location(key) if hasattr(raw, "key_location") else where
                    break
        head, hint, tail = error.message.partition("; did you mean")
        raise InputError(f"{head} for host '{host.name}'{hint}{tail}", where,
                         error.expected) from None
    if seen is not None:
        seen.add(id(raw))


def check_credentials(host: Any) -> None:
    """What a connection needs from this machine: the client certificate and key files of
    `auth: certificate`, and for SSH without a password an agent or a key in ~/.ssh.
    `InputError` at the host, found before any host is touched (not exit 4 at connect)."""
    conn = host.connection
    if conn.transport in ("psrp", "winrm") and conn.auth == "certificate":
        for setting in ("certificate_pem", "certificate_key_pem"):
            path = getattr(conn, setting)
            if path and not Path(path).expanduser().is_file():
                raise InputError(f"{setting} '{path}' of host '{host.name}' is not a file",
                                 _host_location(host), "a readable PEM file on this machine")
    bundle = conn.cert_validation
    if conn.transport in ("psrp", "winrm") and conn.tls and isinstance(bundle, str) and \
            not Path(bundle).expanduser().is_file():
        # a CA bundle the nightly job names must exist by day, not fail at 02:00 as exit 4
        raise InputError(f"cert_validation '{bundle}' of host '{host.name}' is not a file",
                         _host_location(host), "true, false, or the path of a CA bundle (PEM)")
    if conn.transport == "ssh" and conn.password is None:
        ssh = Path("~", ".ssh").expanduser()
        if not os.environ.get("SSH_AUTH_SOCK") and not any(
                (ssh / name).is_file() for name in SSH_DEFAULT_KEYS):
            raise InputError(
                f"host '{host.name}' connects over ssh without a password, and this machine "
                "has no SSH agent (SSH_AUTH_SOCK) and no key in ~/.ssh", _host_location(host),
                "password: {env: NAME}, {file: PATH} or {prompt: true}, or an SSH key")


def _check_when(playbook: Playbook, variables: dict[str, Any]) -> None:
    for step in playbook.steps:
        if not step.when:
            continue
        names = check_expression(step.when, step.when_location)
        missing = sorted(names - variables.keys() - WHEN_NAMES)
        if missing:
            raise InputError(
                f"undefined variable '{missing[0]}' in 'when' of step '{step.name}' "
                f"for host '{variables.get('inventory_hostname')}'",
                step.when_location, "a variable from the inventory, the playbook's vars, -e, "
                "or facts",
            )


def check_hosts(hosts: list[Any], playbook: Playbook, extra: dict[str, Any]) -> None:
    """Check every host's lab vars and credentials, render every step (and check every
    `when`) for every host; `InputError` at the first problem. `run` and `check` call this
    too, so a bad template stops them before any host is touched."""
    seen: set[int] = set()
    for host in hosts:
        check_lab_vars(host, seen)
        check_credentials(host)
        variables = host_variables(host, playbook, extra)
        renderer = Renderer(variables)   # one per host, as the engine: each var resolved once
        for step in playbook.steps:
            render_step(step, variables, renderer)
        _check_when(playbook, variables)


def validate_run(inventory_paths: list[str], playbook_path: str, limit: str | None,
                 extra_vars: list[str]) -> str:
    """Validate a run without contacting any host; return a one-line summary.

    Raises `InputError` (exit 5) at the first problem.
    """
    from pushinstall.inventory import load_inventory, select_hosts

    extra = parse_extra_vars(list(extra_vars))
    inventory = load_inventory(list(inventory_paths))
    playbook = load_playbook(playbook_path, extra)
    hosts = select_hosts(inventory, playbook.hosts, limit,
                         pattern_location=playbook.hosts_location)
    check_hosts(hosts, playbook, extra)
    _resolve_without_prompts(needed_secrets(hosts, playbook))
    steps = len(playbook.steps)
    return (f"playbook OK: {steps} step{'s' if steps != 1 else ''}, "
            f"{len(hosts)} host{'s' if len(hosts) != 1 else ''}")


def needed_secrets(hosts: list[Any], playbook: Playbook) -> list[Any]:
    """The secrets a run of `playbook` on `hosts` reads: each password, and each host var
    the playbook names."""
    from pushinstall.playbook import referenced_names

    names = referenced_names(playbook)
    return [[host.connection.password, [value for key, value in host.vars.items()
                                        if key in names]] for host in hosts]


def _resolve_without_prompts(values: Any) -> None:
    """Read every env and file secret in `values` (exit 5 when one is missing); prompts are
    left for the run, since `validate` is also what a day-time check of a cron job calls."""
    from pushinstall.inventory.secrets import SecretRef

    stack = [values]
    while stack:
        value = stack.pop()
        if isinstance(value, SecretRef):
            if value.kind != "prompt":
                value.reveal()
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
