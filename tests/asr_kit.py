"""Helpers of the ASR end-to-end tests: a lab fleet inventory file and the CLI in-process.

The runs go over the lab's default wire (real pypsrp against the lab's PSRP endpoint on
127.0.0.1, NTLM, message encryption); the lab host model stands in for Windows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kit import recap as recap
from kit import run_cli

ROOT = Path(__file__).parent.parent
PLAYBOOKS = ROOT / "playbooks"
MOBILITY = str(PLAYBOOKS / "asr-mobility.yml")
UPGRADE = str(PLAYBOOKS / "asr-upgrade.yml")
UNINSTALL = str(PLAYBOOKS / "asr-uninstall.yml")
PASSWORD = "lab-password"


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """`pushinstall ARGV` in this process: (exit code, stdout + stderr)."""
    result = run_cli(list(argv), capsys)
    return result.code, result.output


def fleet(tmp_path: Path, hosts: dict[str, dict[str, Any] | None],
          passphrase: str = "lab-passphrase", **all_vars: Any) -> str:
    """An inventory of lab hosts (name -> host vars, `lab:` among them); returns its path."""
    (tmp_path / "password.txt").write_text(PASSWORD + "\n", encoding="utf-8")
    (tmp_path / "passphrase.txt").write_text(passphrase + "\n", encoding="utf-8")
    inventory = {"all": {
        "vars": {"transport": "lab", "username": "LAB\\Administrator",
                 "password": {"file": "password.txt"}, "cs_endpoint": "10.0.0.115",
                 "asr_passphrase": {"file": "passphrase.txt"},
                 "asr_installer_share": "\\\\labshare\\asr", **all_vars},
        "hosts": hosts}}
    path = tmp_path / "fleet.yml"
    path.write_text(json.dumps(inventory, indent=1), encoding="utf-8")   # JSON is YAML
    return str(path)
