"""Every option of every command reads its PUSHINSTALL_* variable, and the ones the README
names really take effect (PUSHINSTALL_CHECK=1 once made real changes)."""

from __future__ import annotations

import json
from pathlib import Path

import click
from cli_kit import PLAYBOOK, cli, write_inventory

from pushinstall.cli import cli as root


def commands(group: click.Command, path: str = "") -> list[tuple[str, click.Command]]:
    found = [(path, group)] if path else []
    for name, sub in getattr(group, "commands", {}).items():
        found += commands(sub, f"{path} {name}".strip())
    return found


def test_every_option_of_every_command_names_its_variable() -> None:
    walked = 0
    for path, command in commands(root):
        helptext = cli(*path.split(), "--help").stdout
        for param in command.params:
            if not isinstance(param, click.Option) or param.name == "help":
                continue
            assert isinstance(param.envvar, str) and param.envvar.startswith("PUSHINSTALL_"), \
                (path, param.name)
            assert param.show_envvar, (path, param.name)
            assert param.envvar in helptext.replace("\n", " ").replace("  ", " ") or \
                param.envvar in helptext.replace("\n                                  ", ""), \
                (path, param.envvar)
            walked += 1
    assert walked > 40
    names = {p.envvar for _, c in commands(root) for p in c.params if isinstance(p, click.Option)}
    assert {"PUSHINSTALL_CHECK", "PUSHINSTALL_EXTRA_VARS", "PUSHINSTALL_VERBOSE",
            "PUSHINSTALL_REMEDIATE", "PUSHINSTALL_KEEP_RUNS", "PUSHINSTALL_WAIT_LOCK"} <= names


def test_check_verbose_extra_vars_and_remediate_from_the_environment(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path, {"h-a": ""})
    planned = cli("run", "-i", str(inventory), str(PLAYBOOK),
                  env={"PUSHINSTALL_CHECK": "1", "PUSHINSTALL_VERBOSE": "1"})
    assert planned.returncode == 0, planned.stderr       # run --check: pending is no failure
    assert "check " in planned.stdout.splitlines()[0]    # it planned, it did not run
    assert "step 'No pending reboot'  ok" in planned.stdout          # -v from the variable
    # nothing was changed: a check still finds the host drifted
    assert cli("check", "-i", str(inventory), str(PLAYBOOK)).returncode == 2
    reports = tmp_path / "reports"
    cli("run", "-i", str(inventory), str(PLAYBOOK), "--check",
        env={"PUSHINSTALL_EXTRA_VARS": "site=ams owner=ops", "PUSHINSTALL_REPORT_DIR":
             str(reports)})
    report = json.loads((reports / "latest.json").read_text())
    assert report["options"]["extra_vars"] == ["owner", "site"]
    fixed = cli("check", "-i", str(inventory), str(PLAYBOOK), env={"PUSHINSTALL_REMEDIATE": "1"})
    assert fixed.returncode == 0, fixed.stdout
    assert cli("check", "-i", str(inventory), str(PLAYBOOK)).returncode == 0


def test_run_check_exits_0_and_check_exits_2_on_drift(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path, {"h-a": ""})
    assert cli("run", "-i", str(inventory), str(PLAYBOOK), "--check").returncode == 0
    assert cli("check", "-i", str(inventory), str(PLAYBOOK)).returncode == 2
    failing = write_inventory(tmp_path / "f", {"h-f": "unreachable: true"})
    assert cli("run", "-i", str(failing), str(PLAYBOOK), "--check").returncode == 4
