"""Usage errors exit 5 with one line pointing into the command line, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
from kit import run_cli

from pushinstall import __version__


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0
    assert out.strip() == f"pushinstall, version {__version__}"


@pytest.mark.parametrize("command", ["run", "check", "install", "validate", "inventory", "lab"])
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli([command, "--help"], capsys)
    assert code == 0
    assert "Usage: pushinstall" in out


def test_bad_option_value_exits_5(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["run", "-i", "inv.yml", "p.yml", "--forks", "zero"], capsys)
    assert code == 5
    assert err.startswith("<command line>:1:22: Invalid value for '-f' / '--forks'")
    assert err.count("\n") == 1


def test_unknown_command_and_missing_argument_exit_5(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["deploy"], capsys)
    assert (code, err.splitlines()[0][:30]) == (5, "<command line>:1:1: No such co")
    code, _, err = run_cli(["run", "-i", "inv.yml"], capsys)
    assert code == 5
    assert "Missing argument 'PLAYBOOK'" in err


def test_console_script_usage_error_has_no_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pushinstall", "check", "--forks", "-3"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 5, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "--forks" in proc.stderr
