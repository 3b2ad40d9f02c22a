"""The real CLI in a subprocess against a small lab inventory (the operator-loop tests).

The inventory holds one host of each outcome; every secret in it is a literal that
`SECRETS` lists, so a test can grep every output for them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PLAYBOOK = REPO / "playbooks" / "asr-mobility.yml"
PASSWORD = "Lab-Pw-7b1e!"
PASSPHRASE = "cs-Passphrase-7b1e"   # each host's simulated configuration server expects it
SECRETS = (PASSWORD, PASSPHRASE)


def write_inventory(folder: Path, hosts: dict[str, str] | None = None) -> Path:
    """An inventory of lab hosts (`name: "lab vars, flow style without braces"`), secrets in
    files beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "password.txt").write_text(PASSWORD + "\n")
    (folder / "passphrase.txt").write_text(PASSPHRASE + "\n")
    hosts = hosts if hosts is not None else {
        "h-ok": "", "h-fail": "installer_exit_code: 14", "h-down": "unreachable: true"}
    lines = [
        "all:",
        "  vars:",
        "    transport: lab",
        "    username: LAB\\Administrator",
        "    password: {file: password.txt}",
        "    cs_endpoint: 10.0.0.115",
        "    asr_passphrase: {file: passphrase.txt}",
        "    asr_installer_share: \\\\labshare\\asr",
        "  children:",
        "    fleet:",
        "      hosts:",
    ]
    lines += [f"        {name}:\n          lab: {{cs_passphrase: {PASSPHRASE}"
              f"{', ' + lab if lab else ''}}}" for name, lab in hosts.items()]
    path = folder / "inventory.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """`pushinstall ARGS` in a subprocess (the state dir of the calling test), piped output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "pushinstall", *args], capture_output=True,
                          text=True, env=full_env, cwd=cwd or REPO, timeout=timeout,
                          check=False)
