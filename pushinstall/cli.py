"""The `pushinstall` command: parse options, call the library, print, exit. No logic here.

Exit codes (errors.py): 0 all good; 2 a host failed (or drifted, in `check`); 4 a host
unreachable (and none failed); 5 invalid input (inventory, playbook, options); 1 a bug;
130 interrupted. Click's usage errors exit 5 too, since 2 means a host failed.
"""

from __future__ import annotations

import json
import shlex
import sys
from typing import Any, NoReturn

import click

from pushinstall import __version__
from pushinstall.errors import EXIT_INTERRUPTED, EXIT_INVALID_INPUT, InputError, PushinstallError

CONTEXT = {"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "PUSHINSTALL"}


def _inventory_option(required: bool = True) -> Any:
    return click.option(
        "-i", "--inventory", "inventories", multiple=True, required=required,
        type=click.Path(dir_okay=False), envvar="PUSHINSTALL_INVENTORY", show_envvar=True,
        help="Inventory file (YAML, Ansible structure). Repeatable.",
    )


def _limit_option() -> Any:
    return click.option(
        "-l", "--limit", envvar="PUSHINSTALL_LIMIT", show_envvar=True,
        help="Further limit hosts: host, group, glob, !exclude, &intersect, a,b, @file.",
    )


def _extra_vars_option() -> Any:
    return click.option(
        "-e", "--extra-vars", "extra_vars", multiple=True, metavar="KEY=VALUE|@FILE",
        help="Extra variables (highest precedence). Repeatable.",
    )


class _Workers(click.ParamType):
    """`auto` (None: the engine decides) or a whole number 1-256."""

    name = "auto|N"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> int | None:
        if value is None or isinstance(value, int) or str(value).strip().lower() == "auto":
            return value if isinstance(value, int) else None
        text = str(value).strip()
        if not text.isdigit() or not 1 <= int(text) <= 256:
            self.fail(f"'{value}' is not auto or a whole number 1-256", param, ctx)
        return int(text)


class _BadValue(click.BadParameter):
    """A refused value that remembers itself, so the error can point at it on the line."""

    def __init__(self, message: str, value: str, param: click.Parameter | None,
                 ctx: click.Context | None) -> None:
        super().__init__(message, ctx, param)
        self.value = value


class _Text(click.ParamType):
    """A string that is not empty (nor only blanks): `--cs-endpoint ""` is a mistake, never a
    request for a default."""

    name = "text"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> str:
        text = str(value)
        if not text.strip():
            raise _BadValue("must not be empty", text, param, ctx)
        return text


TEXT = _Text()


def _wait_lock_option() -> Any:
    return click.option(
        "--wait-lock", type=click.FloatRange(0), default=0, metavar="SECONDS",
        help="When another run on the same inventory and playbook holds the lock, wait this "
             "long for it (default: exit 3 at once).")


def _retry_delay_option() -> Any:
    return click.option(
        "--retry-delay", type=click.FloatRange(0, 30), metavar="SECONDS",
        envvar="PUSHINSTALL_RETRY_DELAY", show_envvar=True,
        help="The first wait before a retry (connect, op call, reboot poll); it doubles each "
             "try up to 30 s, with jitter (default 1).")


def _keep_runs_option() -> Any:
    return click.option(
        "--keep-runs", type=click.IntRange(1), default=100, show_default=True, metavar="N",
        help="Keep the newest N run logs (<state dir>/runs/*.jsonl); older ones are removed.")


def _run_options(func: Any) -> Any:
    """Options shared by `run` and `check`."""
    for decorator in reversed([
        _inventory_option(),
        click.argument("playbook", type=click.Path(dir_okay=False)),
        _limit_option(),
        click.option("-f", "--forks", type=click.IntRange(1, 5000), envvar="PUSHINSTALL_FORKS",
                     show_envvar=True, help="Hosts in flight at once (default: playbook, 50)."),
        click.option("-w", "--workers", type=_Workers(), default="auto", show_default=True,
                     envvar="PUSHINSTALL_WORKERS", show_envvar=True,
                     help="Processes the hosts in flight are spread over: auto (one per 50 "
                          "forks and hosts, at most one per CPU) or a number."),
        _extra_vars_option(),
        click.option("--diff", is_flag=True, help="Show what each change changes."),
        click.option("-v", "--verbose", count=True,
                     help="More output: -v ok/skipped steps and timings, -vv transport detail."),
        click.option("--no-color", is_flag=True, help="No colour in the live view (NO_COLOR "
                     "does the same)."),
        click.option("--jsonl", "jsonl_path", type=click.Path(dir_okay=False),
                     envvar="PUSHINSTALL_JSONL", show_envvar=True,
                     help="Write every event as one JSON line, flushed as it happens."),
        click.option("--report-dir", type=click.Path(file_okay=False),
                     envvar="PUSHINSTALL_REPORT_DIR", show_envvar=True,
                     help="Write <run_id>.json, .xml (JUnit) and .html here at the end, and "
                          "point latest.* at them."),
        _retry_delay_option(),
        _wait_lock_option(),
        _keep_runs_option(),
    ]):
        func = decorator(func)
    return func


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="pushinstall")
def cli() -> None:
    """Push the Azure Site Recovery Mobility service onto Windows fleets, agentless."""


@cli.command()
@_inventory_option()
@click.argument("playbook", type=click.Path(dir_okay=False))
@_limit_option()
@_extra_vars_option()
def validate(inventories: tuple[str, ...], playbook: str, limit: str | None,
             extra_vars: tuple[str, ...]) -> None:
    """Check an inventory and a playbook without touching any host."""
    from pushinstall.validate import validate_run

    summary = validate_run(list(inventories), playbook, limit, list(extra_vars))
    click.echo(summary)


@cli.command()
@_inventory_option()
@_limit_option()
@click.option("--host", "host_name", help="Show one host's merged variables (secrets masked).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--graph", is_flag=True, help="The groups as a tree, as ansible-inventory --graph.")
@click.option("--list", "as_list", is_flag=True,
              help="Everything as ansible-inventory --list JSON (secrets masked).")
def inventory(inventories: tuple[str, ...], limit: str | None, host_name: str | None,
              as_json: bool, graph: bool, as_list: bool) -> None:
    """List hosts with their groups, or one host's merged variables."""
    from pushinstall.inventory import describe_host, describe_hosts, load_inventory

    inv = load_inventory(list(inventories))
    if graph or as_list:
        from pushinstall.inventory.views import ansible_list, graph_lines

        click.echo("\n".join(graph_lines(inv)) if graph else
                   json.dumps(ansible_list(inv), indent=2, default=str))
        return
    data = describe_host(inv, host_name) if host_name else describe_hosts(inv, limit)
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))
    elif host_name:
        click.echo(_yaml_text(data))
    else:
        # One write: a 100k-host inventory is 100k lines.
        click.echo("".join(f"{name}  [{', '.join(groups)}]\n"
                           for name, groups in data["hosts"].items())
                   + f"{len(data['hosts'])} hosts")


def _yaml_text(data: Any) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip()


@cli.command()
@_run_options
@click.option("--check", "check_mode", is_flag=True,
              help="Gather and plan only; change nothing (exit 0 unless a host failed).")
@click.option("--list-hosts", is_flag=True, help="Print the hosts the run would touch; run "
              "nothing.")
@click.option("--list-steps", is_flag=True, help="Print the playbook's steps; run nothing.")
@click.option("--start-at-step", metavar="NAME", help="Skip the steps before this one.")
def run(**options: Any) -> None:
    """Bring every host of the inventory to the playbook's desired state."""
    from pushinstall.runner import run_command

    sys.exit(run_command("run", options))


@cli.command()
@_run_options
@click.option("--remediate", is_flag=True, help="Apply the changes that drifted hosts need.")
def check(**options: Any) -> None:
    """Compliance check: report drift (exit 2) without changing anything, unless --remediate."""
    from pushinstall.runner import run_command

    sys.exit(run_command("check", options))


@cli.command()
@click.argument("host", type=TEXT, nargs=-1, required=True, metavar="HOST")
@click.option("--mode", type=click.Choice(["classic", "modernized", "legacy"]),
              default="classic", show_default=True,
              help="Installer generation (asr_mode; see docs/playbook.md).")
@click.option("--version", "asr_version", type=TEXT,
              help="Build that must be installed at least, e.g. 9.62.7172.1 (default: the "
              "version in the bundle's name).")
@click.option("--cs-endpoint", required=True, type=TEXT, envvar="PUSHINSTALL_CS_ENDPOINT",
              show_envvar=True, help="Configuration server IP or name.")
@click.option("--passphrase-file", required=True, type=click.Path(dir_okay=False),
              envvar="PUSHINSTALL_PASSPHRASE_FILE", show_envvar=True,
              help="File on this machine holding the configuration server passphrase.")
@click.option("--installer", required=True, type=TEXT, envvar="PUSHINSTALL_INSTALLER",
              show_envvar=True,
              help="Mobility service installer: UNC path, URL, or a file on this machine.")
@click.option("--installer-sha256", type=TEXT,
              help="Expected sha256 of the installer (recommended).")
@click.option("--vm-agent", type=TEXT, help="Azure VM agent MSI: UNC path, URL or local file "
              "(default: WindowsAzureVmAgent.msi beside the installer).")
@click.option("--vm-agent-sha256", type=TEXT, help="Expected sha256 of the Azure VM agent MSI.")
@click.option("--transport", type=click.Choice(["psrp", "winrm", "ssh", "lab"]),
              default="psrp", show_default=True, envvar="PUSHINSTALL_TRANSPORT")
@click.option("-u", "--user", "username", type=TEXT, envvar="PUSHINSTALL_USER", show_envvar=True)
@click.option("--password-env", type=TEXT, default="PUSHINSTALL_PASSWORD", show_default=True,
              help="Environment variable holding the password (never pass it as an option).")
@click.option("--port", type=click.IntRange(1, 65535))
@click.option("--auth", type=click.Choice(
    ["negotiate", "ntlm", "kerberos", "credssp", "basic", "certificate"]), default="negotiate",
    show_default=True)
@click.option("--no-tls", is_flag=True, help="HTTP with message encryption instead of HTTPS.")
@click.option("--no-cert-validation", is_flag=True, help="Do not validate the HTTPS certificate.")
@click.option("--check", "check_mode", is_flag=True, help="Plan only; change nothing.")
@click.option("-v", "--verbose", count=True)
@click.option("--no-color", is_flag=True, help="No colour in the live view.")
@click.option("--jsonl", "jsonl_path", type=click.Path(dir_okay=False))
@_retry_delay_option()
@_wait_lock_option()
@_keep_runs_option()
def install(**options: Any) -> None:
    """Install and register the Mobility service on HOST [HOST...], no inventory file
    needed."""
    from pushinstall.runner import install_command

    sys.exit(install_command(options))


@cli.command()
@click.option("--host", "host_name", help="One host's timeline: status per run and what "
              "changed, drifted or failed.")
@click.option("-n", "--last", type=click.IntRange(1), default=20, show_default=True,
              help="How many runs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def history(host_name: str | None, last: int, as_json: bool) -> None:
    """The runs recorded in the history database (state dir), newest first."""
    from pushinstall.history_view import history_lines

    for line in history_lines(host_name, last, as_json):
        click.echo(line)


@cli.command()
@click.option("--playbook", help="Only checks of this playbook (as the run named it).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def drift(playbook: str | None, as_json: bool) -> None:
    """Hosts whose compliance changed since the previous check: newly drifted (exit 2),
    newly fixed, newly unreachable. The command a monitoring system calls."""
    from pushinstall.history_view import drift_lines

    lines, code = drift_lines(playbook, as_json)
    for line in lines:
        click.echo(line)
    sys.exit(code)


@cli.group()
def lab() -> None:
    """Simulated Windows hosts: serve them on loopback, or reset their state."""


@lab.command("serve")
@_inventory_option()
@click.option("--base-port", type=click.IntRange(1024, 65000), default=None,
              help="First port to listen on (default: free ports).")
@click.option("--write-inventory", type=click.Path(dir_okay=False),
              help="Write an inventory pointing at the served hosts (secrets in files beside "
              "it, in <name>.d/).")
@click.option("--transport", type=click.Choice(["psrp", "winrm", "ssh"]), default=None,
              help="Transport of every host in the written inventory (default: the host's "
              "lab_wire var, else psrp).")
@click.option("--tls", is_flag=True,
              help="Written WS-Man hosts use HTTPS, validated against the served certificate "
              "(default: HTTP with message encryption).")
def lab_serve(inventories: tuple[str, ...], base_port: int | None,
              write_inventory: str | None, transport: str | None, tls: bool) -> None:
    """Serve every lab host of an inventory over WS-Man and SSH until Ctrl-C.

    Each host gets an HTTP, an HTTPS and an SSH port on 127.0.0.1 (with --base-port P, host
    number i uses P+3i, P+3i+1, P+3i+2). The hosts keep the state earlier runs left.
    """
    from pushinstall.lab.serve import serve_command

    serve_command(list(inventories), base_port, write_inventory, transport=transport, tls=tls)


@lab.command("reset")
@_inventory_option(required=False)
@click.option("--host", "host_names", multiple=True, help="Reset only these hosts.")
def lab_reset(inventories: tuple[str, ...], host_names: tuple[str, ...]) -> None:
    """Start lab hosts fresh: forget what earlier runs did to them."""
    from pushinstall.lab import reset_lab
    from pushinstall.paths import state_dir

    names = list(host_names) or None
    if inventories and not names:
        from pushinstall.inventory import load_inventory

        inv = load_inventory(list(inventories))
        names = [h.name for h in inv.hosts.values() if h.connection.transport == "lab"]
    count = reset_lab(state_dir(), names)
    click.echo(f"reset {count} lab hosts")


def _name_env_vars(command: click.Command) -> None:
    """Every option reads `PUSHINSTALL_<LONG NAME>` (`--check` -> PUSHINSTALL_CHECK), as the
    README promises; `--help` shows it. Options that name their variable keep it."""
    for param in command.params:
        if not isinstance(param, click.Option) or param.name in ("help", "version"):
            continue
        if param.envvar is None:
            longest = max(param.opts, key=len).lstrip("-")
            param.envvar = "PUSHINSTALL_" + longest.replace("-", "_").upper()
        param.show_envvar = True
    for sub in getattr(command, "commands", {}).values():
        _name_env_vars(sub)


def _usage_location(error: click.ClickException, argv: list[str]) -> str:
    """`<command line>:1:COL` pointing at the offending option when it can be found."""
    line = " ".join(shlex.quote(a) for a in argv)
    column = 1
    param = getattr(error, "param", None)
    if isinstance(param, click.Argument) and isinstance(error, _BadValue):
        for i, arg in enumerate(argv[1:], start=1):   # argv[0] is the command
            if arg == error.value:
                column = len(" ".join(shlex.quote(a) for a in argv[:i])) + 2
                break
    elif param is not None:
        for opt in getattr(param, "opts", []):
            for i, arg in enumerate(argv):
                if arg == opt or arg.startswith(opt + "="):
                    column = len(" ".join(shlex.quote(a) for a in argv[:i])) + (2 if i else 1)
                    break
    return f"<command line>:1:{column if line else 1}"


def _fail(message: str, code: int) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(code)


_name_env_vars(cli)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: map errors to one line and the documented exit codes."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        result = cli.main(args=argv, prog_name="pushinstall", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as error:
        click.echo(error.ctx.get_help() if error.ctx else "")
        sys.exit(0)
    except click.UsageError as error:
        hint = f" (see 'pushinstall {error.ctx.command_path.split(' ', 1)[-1]} --help')" \
            if error.ctx and " " in error.ctx.command_path else " (see 'pushinstall --help')"
        _fail(f"{_usage_location(error, argv)}: {error.format_message()}{hint}", EXIT_INVALID_INPUT)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.Abort:
        _fail("interrupted", EXIT_INTERRUPTED)
    except click.ClickException as error:
        _fail(f"<command line>:1:1: {error.format_message()}", EXIT_INVALID_INPUT)
    except InputError as error:
        _fail(str(error), EXIT_INVALID_INPUT)
    except KeyboardInterrupt:
        _fail("interrupted", EXIT_INTERRUPTED)
    except PushinstallError as error:
        _fail(f"pushinstall: {error}", error.exit_code)
    sys.exit(result if isinstance(result, int) else 0)
