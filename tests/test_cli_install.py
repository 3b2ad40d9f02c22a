"""`pushinstall install HOST`: the shipped playbook on one lab host, no inventory file."""

from __future__ import annotations

from pathlib import Path

import pytest
from kit import run_cli, write_file

from pushinstall.lab import catalog, lab_host
from pushinstall.runner import _split_source

BUNDLE = f"{catalog.SHARE}\\{catalog.ASR_BUNDLE}"


@pytest.fixture
def passphrase(tmp_path: Path) -> Path:
    path = tmp_path / "passphrase.txt"
    path.write_text("lab-passphrase\n")
    return path


def test_install_one_lab_host(passphrase: Path, capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUSHINSTALL_LAB_WIRE", "0")      # in-process lab: no socket needed
    argv = ["lab-solo", "--transport", "lab", "--cs-endpoint", "10.0.0.115",
            "--passphrase-file", str(passphrase), "--installer", BUNDLE,
            "--installer-sha256", catalog.sha256_of(catalog.ASR_BUNDLE)]
    code, out, _ = run_cli(["install", *argv], capsys)
    assert code == 0, out
    assert "lab-solo  step 'Install Mobility service'  changed" in out
    assert "lab-passphrase" not in out
    host = lab_host("lab-solo")
    registered = host.handle({"op": "facts", "args": {"queries": [{
        "id": "s", "kind": "registry", "name": "AgentConfigurationStatus",
        "key": "HKLM:\\SOFTWARE\\Wow6432Node\\InMage Systems\\Installed Products\\5"}]}})
    assert registered["result"]["s"]["value"] == "Succeeded"
    # The passphrase file was removed after registration.
    gone = host.handle({"op": "facts", "args": {"queries": [{
        "id": "f", "kind": "file", "path": "C:\\ProgramData\\pushinstall\\passphrase.txt"}]}})
    assert gone["result"]["f"]["exists"] is False
    # Again: nothing to do.
    code, out, _ = run_cli(["install", *argv], capsys)
    assert code == 0
    assert "changed=0" in out


def test_install_wrong_passphrase_fails_with_the_asr_message(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUSHINSTALL_LAB_WIRE", "0")
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not-the-passphrase")
    code, out, _ = run_cli(["install", "lab-wrong", "--transport", "lab", "--cs-endpoint",
                            "10.0.0.115", "--passphrase-file", str(wrong), "--installer", BUNDLE],
                           capsys)
    assert code == 2
    assert "exit 14" in out and "invalid passphrase" in out.lower()
    assert "not-the-passphrase" not in out


def test_install_input_errors_exit_5(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["install", "h", "--cs-endpoint", "x", "--passphrase-file",
                            str(tmp_path / "missing.txt"), "--installer", BUNDLE], capsys)
    assert code == 5
    assert err.startswith("<command line>:1:1: --passphrase-file: cannot read")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    code, _, err = run_cli(["install", "h", "--cs-endpoint", "x", "--passphrase-file", str(empty),
                            "--installer", BUNDLE, "--auth", "basic", "--no-tls"], capsys)
    assert code == 5
    assert "is empty" in err


def test_split_source() -> None:
    assert _split_source("\\\\srv\\share\\ua.exe") == ("\\\\srv\\share", "ua.exe")
    assert _split_source("https://web/asr/ua.exe?sig=abc") == ("https://web/asr", "ua.exe")
    assert _split_source("/home/admin/ua.exe") == ("/home/admin", "ua.exe")


@pytest.mark.parametrize(("argv", "column", "what"), [
    (["install", "", "--cs-endpoint", "10.0.0.115"], 9, "'HOST'"),
    (["install", "h", "--cs-endpoint", ""], 11, "'--cs-endpoint'"),
    (["install", "h", "--cs-endpoint", "10.0.0.115", "--installer", " "], 36, "'--installer'"),
    (["install", "h", "--cs-endpoint", "10.0.0.115", "--installer-sha256="], 36,
     "'--installer-sha256'"),
])
def test_install_refuses_empty_values(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      argv: list[str], column: int, what: str) -> None:
    passphrase = write_file(tmp_path, "pp.txt", "lab-passphrase")
    full = [*argv, "--passphrase-file", passphrase, "--transport", "lab"]
    if "--installer" not in argv:
        full += ["--installer", f"{catalog.SHARE}\\{catalog.ASR_BUNDLE}"]
    code, out, err = run_cli(full, capsys)
    assert (code, out) == (5, "")
    assert err.startswith(f"<command line>:1:{column}: Invalid value for {what}")
    assert "must not be empty (see 'pushinstall install --help')" in err


def test_install_with_certificate_auth_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    passphrase = write_file(tmp_path, "pp.txt", "lab-passphrase")
    code, out, err = run_cli(["install", "h", "--cs-endpoint", "10.0.0.115", "--passphrase-file",
                              passphrase, "--installer", "\\\\srv\\asr\\x.exe", "--auth",
                              "certificate"], capsys)
    assert (code, out) == (5, "")
    assert err.startswith("<command line>:1:1: host 'h' uses auth: certificate without "
                          "'certificate_pem'")
