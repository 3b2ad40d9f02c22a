"""Ansible habits: run --list-hosts/--list-steps/--start-at-step, inventory --graph/--list,
and a host name that is not found suggests the FQDN it is short for."""

from __future__ import annotations

import json
from pathlib import Path

from cli_kit import PLAYBOOK, REPO, SECRETS, cli, write_inventory

EXAMPLE = str(REPO / "inventories" / "example.yml")
LAB = str(REPO / "inventories" / "lab.yml")


def test_list_hosts_and_steps_touch_nothing(state_dir: Path) -> None:
    hosts = cli("run", "-i", LAB, str(PLAYBOOK), "--list-hosts", "-l", "lab_dub")
    assert hosts.returncode == 0
    assert hosts.stdout.splitlines() == ["hosts (3):", "  lab-app01", "  lab-app02",
                                         "  lab-app03"]
    steps = cli("run", "-i", LAB, str(PLAYBOOK), "--list-steps")
    assert steps.returncode == 0
    assert "  6. Install Mobility service  [package]  when: asr_mode != 'legacy'" in \
        steps.stdout.splitlines()
    assert not (state_dir / "runs").exists()                 # no run happened


def test_start_at_step(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path, {"h-a": ""})
    later = cli("run", "-i", str(inventory), str(PLAYBOOK), "--check",
                "--start-at-step", "svagents running", "-v")
    assert later.returncode == 0, later.stderr
    assert "Staging directory" not in later.stdout and "svagents running" in later.stdout
    wrong = cli("run", "-i", str(inventory), str(PLAYBOOK),
                "--start-at-step", "Install mobility service")
    assert wrong.returncode == 5
    assert "did you mean 'Install Mobility service'?" in wrong.stderr


def test_inventory_graph_and_ansible_list() -> None:
    graph = cli("inventory", "-i", LAB, "--graph").stdout.splitlines()
    assert graph[:3] == ["@all:", "  |--@lab_ams:", "  |  |--lab-web01"]
    listing = json.loads(cli("inventory", "-i", LAB, "--list").stdout)
    assert listing["all"]["children"] == ["lab_ams", "lab_dub"]
    assert listing["lab_dub"]["hosts"] == ["lab-app01", "lab-app02", "lab-app03"]
    assert listing["lab_dub"]["vars"] == {"site": "dub"}
    assert listing["_meta"]["hostvars"]["lab-web01"]["password"].startswith("********")
    example = cli("inventory", "-i", EXAMPLE, "--list").stdout
    assert "site_ams" in example and not any(secret in example for secret in SECRETS)


def test_a_short_host_name_suggests_its_fqdn() -> None:
    result = cli("inventory", "-i", EXAMPLE, "--host", "web01")
    assert result.returncode == 5
    assert "did you mean 'web01.ams.corp.example'?" in result.stderr
