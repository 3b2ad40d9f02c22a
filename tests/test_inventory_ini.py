"""Ansible INI inventories: groups, host vars, [group:vars], [group:children], ranges,
located errors, !vault refused with the alternatives; a lab run from an INI file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_kit import PASSPHRASE, PASSWORD, PLAYBOOK, SECRETS, cli

INI = r"""# the lab, as an Ansible INI inventory
lab-solo lab='{cs_passphrase: %(passphrase)s}'

[web]
lab-web[01:02] site=ams lab='{cs_passphrase: %(passphrase)s}'

[web:vars]
note="two words"

[lab:children]
web

[all:vars]
transport=lab
username=LAB\Administrator
password='{file: password.txt}'
asr_passphrase='{file: passphrase.txt}'
cs_endpoint=10.0.0.115
asr_installer_share=\\labshare\asr
"""


def write_ini(folder: Path, text: str = INI, name: str = "hosts") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "password.txt").write_text(PASSWORD + "\n")
    (folder / "passphrase.txt").write_text(PASSPHRASE + "\n")
    path = folder / name
    path.write_text(text % {"passphrase": PASSPHRASE} if "%(" in text else text)
    return path


def test_ini_inventory_loads_like_yaml(tmp_path: Path) -> None:
    path = write_ini(tmp_path)
    listing = json.loads(cli("inventory", "-i", str(path), "--json").stdout)
    # ungrouped hosts belong to `all` only; nearest group last as in the YAML listing
    assert listing["hosts"] == {"lab-solo": [], "lab-web01": ["lab", "web"],
                                "lab-web02": ["lab", "web"]}
    host = json.loads(cli("inventory", "-i", str(path), "--host", "lab-web02", "--json").stdout)
    assert host["vars"]["site"] == "ams" and host["vars"]["note"] == "two words"
    assert host["connection"]["username"] == "LAB\\Administrator"
    assert host["vars"]["asr_installer_share"] == "\\\\labshare\\asr"
    assert "lab" in host["groups"] and "web" in host["groups"]
    assert not any(secret in json.dumps(host) for secret in SECRETS)


def test_a_run_from_an_ini_inventory(tmp_path: Path) -> None:
    path = write_ini(tmp_path, name="lab.ini")
    result = cli("run", "-i", str(path), str(PLAYBOOK), "-l", "web")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 host(s): 2 changed" in result.stdout
    assert not any(secret in result.stdout + result.stderr for secret in SECRETS)


@pytest.mark.parametrize(("text", "where", "what"), [
    ("[web\nh1\n", "1:1", "bad section header"),
    ("[web]\nh1 a=1 b\n", "2:8", "'b' is not a variable (key=value)"),
    ("[web]\nh1 password=$ANSIBLE_VAULT;1.1;AES256\n", "2:13",
     "Ansible Vault value cannot be read by pushinstall ({file: PATH}, {env: NAME} or "
     "{prompt: true} instead)"),
    ("[web]\nweb[01:x]\n", "2:1", "bad host range"),
    ("[web:children]\na b\n", "2:1", "is not one group name"),
    ("[web]\nh1 lab={a: 1\n", "2:8", "is not a YAML flow value"),
])
def test_ini_errors_are_one_located_line(tmp_path: Path, text: str, where: str,
                                         what: str) -> None:
    path = write_ini(tmp_path, text, "bad.ini")
    result = cli("inventory", "-i", str(path))
    assert result.returncode == 5
    assert result.stderr.startswith(f"{path}:{where}: "), result.stderr
    assert what in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_yaml_vault_value_names_the_alternatives(tmp_path: Path) -> None:
    path = tmp_path / "v.yml"
    path.write_text("all:\n  vars:\n    password: !vault |\n      $ANSIBLE_VAULT;1.1;AES256\n"
                    "      6162\n  hosts:\n    a:\n")
    result = cli("inventory", "-i", str(path))
    assert result.returncode == 5
    assert result.stderr.startswith(f"{path}:3:15: an Ansible Vault value (!vault)")
    assert "{file: PATH}, {env: NAME} or {prompt: true}" in result.stderr
