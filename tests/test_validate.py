"""`validate` (and `run` / `check`, which validate first) find what would otherwise fail at
connect: lab vars and credentials are checked against the inventory, exit 5, located at the
key, before any host is touched.

Everything runs for real: the CLI in-process, the lab simulator, files in tmp_path. Nothing is
mocked; the SSH-key check looks at a temporary HOME instead of the user's own.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kit import run_cli, write_file

from pushinstall.lab.host import state_file

PLAYBOOK = """\
name: staging
hosts: all
steps:
  - name: Staging directory
    directory: {path: 'C:\\Temp\\ASR'}
"""


LAB_INVENTORY = """\
all:
  vars:
    transport: lab
    password: {file: pw.txt}
    cs_endpoint: 10.0.0.115
  hosts:
    good:
      lab: {os: "2016"}
    bad:
      lab:
        os: "2019"
        laytency_ms: 200
"""


def test_validate_finds_an_unknown_lab_var_at_its_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = write_file(tmp_path, "inv.yml", LAB_INVENTORY)
    playbook = write_file(tmp_path, "pb.yml", PLAYBOOK)
    code, out, err = run_cli(["validate", "-i", inventory, playbook], capsys)
    assert (code, out) == (5, "")
    assert err.startswith(f"{inventory}:12:9: unknown lab var 'laytency_ms' for host 'bad'; "
                          "did you mean 'latency_ms'? (one of: bad_credentials, ")


def test_validate_finds_a_lab_var_of_the_wrong_type(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = write_file(tmp_path, "inv.yml", LAB_INVENTORY.replace("laytency_ms: 200",
                                                                 "latency_ms: slow"))
    playbook = write_file(tmp_path, "pb.yml", PLAYBOOK)
    code, _, err = run_cli(["validate", "-i", inventory, playbook], capsys)
    assert code == 5
    assert err == f"{inventory}:12:9: lab var 'latency_ms' is 'slow' for host 'bad' " \
                  "(an integer)\n"


def test_a_group_lab_var_and_a_lab_var_that_is_no_mapping(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    group = write_file(tmp_path, "group.yml", "all:\n  vars:\n    transport: lab\n"
                       "    lab: {cs_passphrase: 42}\n  hosts:\n    h1:\n    h2:\n")
    playbook = write_file(tmp_path, "pb.yml", PLAYBOOK)
    code, _, err = run_cli(["validate", "-i", group, playbook], capsys)
    assert code == 5
    # the secret's wrong value is not repeated, only its kind
    assert err == f"{group}:4:11: lab var 'cs_passphrase' is a number for host 'h1' " \
                  "(a string)\n"
    listed = write_file(tmp_path, "list.yml", "all:\n  hosts:\n    h1:\n      transport: lab\n"
                        "      lab: [os]\n")
    code, _, err = run_cli(["validate", "-i", listed, playbook], capsys)
    assert code == 5
    assert err == f"{listed}:5:12: the lab var is a list for host 'h1' " \
                  "(a mapping of lab settings)\n"


@pytest.mark.parametrize("command", ["run", "check"])
def test_run_and_check_stop_before_any_host_is_touched(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], state_dir: Path,
        command: str) -> None:
    inventory = write_file(tmp_path, "inv.yml", LAB_INVENTORY)
    (tmp_path / "pw.txt").write_text("lab-password")
    playbook = write_file(tmp_path, "pb.yml", PLAYBOOK)
    code, out, err = run_cli([command, "-i", inventory, playbook], capsys)
    assert code == 5
    assert err.startswith(f"{inventory}:12:9: unknown lab var 'laytency_ms'")
    assert not state_file(state_dir, "good").exists()
    assert not (state_dir / "runs").exists()
    assert "good" not in out


def test_ssh_without_password_needs_an_agent_or_a_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    inventory = write_file(tmp_path, "inv.yml", "all:\n  hosts:\n    s1:\n      transport: ssh\n"
                           "      username: admin\n")
    playbook = write_file(tmp_path, "pb.yml", PLAYBOOK)
    code, _, err = run_cli(["validate", "-i", inventory, playbook], capsys)
    assert code == 5
    assert err.startswith(f"{inventory}:3:5: host 's1' connects over ssh without a password")
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_ed25519").write_text("a key file")
    code, out, _ = run_cli(["validate", "-i", inventory, playbook], capsys)
    assert (code, out) == (0, "playbook OK: 1 step, 1 host\n")


def test_certificate_files_must_exist(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    inventory = write_file(tmp_path, "inv.yml", "all:\n  hosts:\n    w1:\n      auth: certificate\n"
                           f"      certificate_pem: {tmp_path}/client.pem\n"
                           f"      certificate_key_pem: {tmp_path}/client.key\n")
    playbook = write_file(tmp_path, "pb.yml", PLAYBOOK)
    code, _, err = run_cli(["validate", "-i", inventory, playbook], capsys)
    assert code == 5
    assert err == (f"{inventory}:3:5: certificate_pem '{tmp_path}/client.pem' of host 'w1' "
                   "is not a file (a readable PEM file on this machine)\n")
    (tmp_path / "client.pem").write_text("pem")
    (tmp_path / "client.key").write_text("key")
    code, _, _ = run_cli(["validate", "-i", inventory, playbook], capsys)
    assert code == 0
