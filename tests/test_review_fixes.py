"""Fixes from an independent review: secret masking at every depth, lab vars and credentials
checked by validation (exit 5, located) instead of failing at connect, empty command-line
values refused, and tighter resource argument types.

Everything runs for real: the CLI in-process, the lab simulator, files in tmp_path. Nothing is
mocked; the SSH-key check looks at a temporary HOME instead of the user's own.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_corpus_playbook import run_cli as cli

from pushinstall.errors import InputError
from pushinstall.inventory.secrets import is_secret_name, mask_secrets
from pushinstall.lab import catalog, default_state_dir
from pushinstall.lab.host import state_file
from pushinstall.resources.programs import RUN_ARGS
from pushinstall.resources.schema import check_args
from pushinstall.secret import MASK, Secret

PLAYBOOK = """\
name: review
hosts: all
steps:
  - name: Staging directory
    directory: {path: 'C:\\Temp\\ASR'}
"""
SECRETS = ("hunter2", "topsecret", "sharepw", "nestedpw", "listpw", "winrmpw")


def write(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text)
    return str(path)


# ---------------------------------------------------------------- 1. masking


NESTED = """\
all:
  vars:
    transport: lab
    ansible_become_pass: hunter2
  hosts:
    h1:
      ansible_winrm_password: winrmpw
      lab: {cs_passphrase: topsecret, share_password: sharepw, os: "2016"}
      share_credential: {username: CORP\\svc, password: nestedpw}
      creds:
        - {username: u1, password: listpw}
"""


@pytest.mark.parametrize("as_json", [False, True])
def test_inventory_host_masks_secret_names_at_every_depth(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], as_json: bool) -> None:
    inventory = write(tmp_path, "inv.yml", NESTED)
    code, out, err = cli(["inventory", "-i", inventory, "--host", "h1",
                          *(["--json"] if as_json else [])], capsys)
    assert code == 0
    for secret in SECRETS:
        assert secret not in out + err
    shown = json.loads(out) if as_json else None
    if shown is not None:
        assert shown["vars"]["lab"]["cs_passphrase"] == MASK
        assert shown["vars"]["lab"]["os"] == "2016"          # not a secret: shown
        assert shown["vars"]["share_credential"] == {"username": "CORP\\svc", "password": MASK}
        assert shown["vars"]["creds"] == [{"username": "u1", "password": MASK}]
        assert shown["vars"]["ansible_become_pass"].startswith(MASK)
    else:
        assert "username: CORP\\svc" in out
        assert out.count(MASK) >= 6
    # a plaintext `_pass` var earns the plaintext warning, like a password does
    assert "inv.yml:4:26: warning: plaintext password" in err


def test_secret_names_include_pass_words() -> None:
    for name in ("ansible_become_pass", "ansible_ssh_pass", "become_pass", "vault_pass_file",
                 "ansible_password", "ansible_winrm_password", "cs_passphrase",
                 "share_password", "client_secret", "db_pwd", "PASS"):
        assert is_secret_name(name), name
    for name in ("compass", "bypass_proxy", "passive_mode", "username", "asr_installer_share",
                 "cs_endpoint", "site"):
        assert not is_secret_name(name), name


def test_mask_secrets_walks_mappings_and_lists() -> None:
    value = {"a": [{"token_secret": ["x", {"deep": "y"}]}, Secret("z", source="env Z")],
             "user": {"password": None, "pass": True, "name": "u"}}
    assert mask_secrets(value) == {
        "a": [{"token_secret": [MASK, {"deep": MASK}]}, f"{MASK} (env Z)"],
        "user": {"password": None, "pass": True, "name": "u"},
    }


# ---------------------------------------------------------------- 2. lab vars


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
    inventory = write(tmp_path, "inv.yml", LAB_INVENTORY)
    playbook = write(tmp_path, "pb.yml", PLAYBOOK)
    code, out, err = cli(["validate", "-i", inventory, playbook], capsys)
    assert (code, out) == (5, "")
    assert err.startswith(f"{inventory}:12:9: unknown lab var 'laytency_ms' for host 'bad'; "
                          "did you mean 'latency_ms'? (one of: bad_credentials, ")


def test_validate_finds_a_lab_var_of_the_wrong_type(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = write(tmp_path, "inv.yml", LAB_INVENTORY.replace("laytency_ms: 200",
                                                                 "latency_ms: slow"))
    playbook = write(tmp_path, "pb.yml", PLAYBOOK)
    code, _, err = cli(["validate", "-i", inventory, playbook], capsys)
    assert code == 5
    assert err == f"{inventory}:12:9: lab var 'latency_ms' is 'slow' for host 'bad' " \
                  "(an integer)\n"


def test_a_group_lab_var_and_a_lab_var_that_is_no_mapping(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    group = write(tmp_path, "group.yml", "all:\n  vars:\n    transport: lab\n"
                  "    lab: {cs_passphrase: 42}\n  hosts:\n    h1:\n    h2:\n")
    playbook = write(tmp_path, "pb.yml", PLAYBOOK)
    code, _, err = cli(["validate", "-i", group, playbook], capsys)
    assert code == 5
    # the secret's wrong value is not repeated, only its kind
    assert err == f"{group}:4:11: lab var 'cs_passphrase' is a number for host 'h1' " \
                  "(a string)\n"
    listed = write(tmp_path, "list.yml", "all:\n  hosts:\n    h1:\n      transport: lab\n"
                   "      lab: [os]\n")
    code, _, err = cli(["validate", "-i", listed, playbook], capsys)
    assert code == 5
    assert err == f"{listed}:5:12: the lab var is a list for host 'h1' " \
                  "(a mapping of lab settings)\n"


@pytest.mark.parametrize("command", ["run", "check"])
def test_run_and_check_stop_before_any_host_is_touched(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], state_dir: Path,
        command: str) -> None:
    inventory = write(tmp_path, "inv.yml", LAB_INVENTORY)
    (tmp_path / "pw.txt").write_text("lab-password")
    playbook = write(tmp_path, "pb.yml", PLAYBOOK)
    code, out, err = cli([command, "-i", inventory, playbook], capsys)
    assert code == 5
    assert err.startswith(f"{inventory}:12:9: unknown lab var 'laytency_ms'")
    assert not state_file(default_state_dir(), "good").exists()
    assert not (state_dir / "runs").exists()
    assert "good" not in out


# ---------------------------------------------------------------- 3. empty values


@pytest.mark.parametrize(("argv", "column", "what"), [
    (["install", "", "--cs-endpoint", "10.0.0.115"], 9, "'HOST'"),
    (["install", "h", "--cs-endpoint", ""], 11, "'--cs-endpoint'"),
    (["install", "h", "--cs-endpoint", "10.0.0.115", "--installer", " "], 36, "'--installer'"),
    (["install", "h", "--cs-endpoint", "10.0.0.115", "--installer-sha256="], 36,
     "'--installer-sha256'"),
])
def test_install_refuses_empty_values(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      argv: list[str], column: int, what: str) -> None:
    passphrase = write(tmp_path, "pp.txt", "lab-passphrase")
    full = [*argv, "--passphrase-file", passphrase, "--transport", "lab"]
    if "--installer" not in argv:
        full += ["--installer", f"{catalog.SHARE}\\{catalog.ASR_BUNDLE}"]
    code, out, err = cli(full, capsys)
    assert (code, out) == (5, "")
    assert err.startswith(f"<command line>:1:{column}: Invalid value for {what}")
    assert "must not be empty (see 'pushinstall install --help')" in err


# ---------------------------------------------------------------- 4. credentials


def test_ssh_without_password_needs_an_agent_or_a_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    inventory = write(tmp_path, "inv.yml", "all:\n  hosts:\n    s1:\n      transport: ssh\n"
                      "      username: admin\n")
    playbook = write(tmp_path, "pb.yml", PLAYBOOK)
    code, _, err = cli(["validate", "-i", inventory, playbook], capsys)
    assert code == 5
    assert err.startswith(f"{inventory}:3:5: host 's1' connects over ssh without a password")
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_ed25519").write_text("a key file")
    code, out, _ = cli(["validate", "-i", inventory, playbook], capsys)
    assert (code, out) == (0, "playbook OK: 1 step, 1 host\n")


def test_certificate_files_must_exist(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    inventory = write(tmp_path, "inv.yml", "all:\n  hosts:\n    w1:\n      auth: certificate\n"
                      f"      certificate_pem: {tmp_path}/client.pem\n"
                      f"      certificate_key_pem: {tmp_path}/client.key\n")
    playbook = write(tmp_path, "pb.yml", PLAYBOOK)
    code, _, err = cli(["validate", "-i", inventory, playbook], capsys)
    assert code == 5
    assert err == (f"{inventory}:3:5: certificate_pem '{tmp_path}/client.pem' of host 'w1' "
                   "is not a file (a readable PEM file on this machine)\n")
    (tmp_path / "client.pem").write_text("pem")
    (tmp_path / "client.key").write_text("key")
    code, _, _ = cli(["validate", "-i", inventory, playbook], capsys)
    assert code == 0


def test_install_with_certificate_auth_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    passphrase = write(tmp_path, "pp.txt", "lab-passphrase")
    code, out, err = cli(["install", "h", "--cs-endpoint", "10.0.0.115", "--passphrase-file",
                          passphrase, "--installer", "\\\\srv\\asr\\x.exe", "--auth",
                          "certificate"], capsys)
    assert (code, out) == (5, "")
    assert err.startswith("<command line>:1:1: host 'h' uses auth: certificate without "
                          "'certificate_pem'")


# ---------------------------------------------------------------- 5. argument types


@pytest.mark.parametrize(("args", "message"), [
    ({"path": "x.exe", "timeout": -5}, "'timeout' of 'command' is -5"),
    ({"path": "x.exe", "timeout": 0}, "'timeout' of 'command' is 0"),
    ({"path": 5}, "'path' of 'command' is a number"),
    ({"path": ""}, "'path' of 'command' is empty"),
    ({"path": "x.exe", "working_directory": 7}, "'working_directory' of 'command' is a number"),
    ({"path": "x.exe", "creates": ["a"]}, "'creates' of 'command' is a list"),
    ({"path": "x.exe", "secret_file": {"path": 1, "content": "s"}},
     "'path' of 'secret_file' of 'command' is a number"),
])
def test_run_arguments_are_typed(args: dict[str, object], message: str) -> None:
    with pytest.raises(InputError) as error:
        check_args(RUN_ARGS, args, "'command'")
    assert error.value.message == message


def test_good_run_arguments_still_pass() -> None:
    check_args(RUN_ARGS, {"path": "x.exe", "timeout": 1, "working_directory": "C:\\",
                          "creates": "{{ marker }}", "arguments": ["/q", 5]}, "'command'")
