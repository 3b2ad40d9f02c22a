"""`validate` checks by day what the 02:00 job will need: env and file secrets the playbook
reads (not prompts), and the files the inventory names (a CA bundle)."""

from __future__ import annotations

from pathlib import Path

from cli_kit import PLAYBOOK, SECRETS, cli, write_inventory


def test_a_missing_secret_file_is_exit_5_at_its_place(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path, {"h-a": ""})
    assert cli("validate", "-i", str(inventory), str(PLAYBOOK)).returncode == 0
    (tmp_path / "passphrase.txt").unlink()
    result = cli("validate", "-i", str(inventory), str(PLAYBOOK))
    assert result.returncode == 5
    assert result.stderr.startswith(f"{inventory}:")
    assert "file not found" in result.stderr and "asr_passphrase" in result.stderr


def test_a_missing_env_secret_but_prompts_are_left_for_the_run(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path, {"h-a": ""})
    text = inventory.read_text().replace("{file: passphrase.txt}", "{env: NIGHTLY_PASSPHRASE}")
    inventory.write_text(text)
    result = cli("validate", "-i", str(inventory), str(PLAYBOOK))
    assert result.returncode == 5 and "'NIGHTLY_PASSPHRASE'" in result.stderr
    assert cli("validate", "-i", str(inventory), str(PLAYBOOK),
               env={"NIGHTLY_PASSPHRASE": SECRETS[1]}).returncode == 0
    inventory.write_text(text.replace("{env: NIGHTLY_PASSPHRASE}", "{prompt: true}"))
    assert cli("validate", "-i", str(inventory), str(PLAYBOOK)).returncode == 0


def test_a_ca_bundle_that_is_no_file_fails_validate(tmp_path: Path) -> None:
    path = tmp_path / "inv.yml"
    path.write_text("all:\n  hosts:\n    h1.corp.example:\n      transport: psrp\n"
                    "      cert_validation: maybe\n")
    result = cli("validate", "-i", str(path), str(PLAYBOOK))
    assert result.returncode == 5
    assert "'cert_validation' is 'maybe'" in result.stderr
    assert result.stderr.startswith(f"{path}:5:24:")   # at the value
