"""`pushinstall install HOST [HOST...]` as a new user tries it, over the lab's PSRP wire: one and
several hosts with no inventory, any bundle (the pin comes from its name or --version), each
--mode; no password is refused before any logon; a missing sha256 pin is warned about and a bad
one is reported against the option. The lab stands in for Windows."""

from __future__ import annotations

from pathlib import Path

import pytest

from pushinstall.cli import main
from pushinstall.lab import catalog, lab_host
from pushinstall.lab.products import installed_ua, registered_cs


def install(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(["install", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return int(done.value.code or 0), out, err


@pytest.fixture
def common(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("PUSHINSTALL_PASSWORD", "lab-password")
    passphrase = tmp_path / "passphrase.txt"
    passphrase.write_text("lab-passphrase\n", encoding="utf-8")
    return ["--transport", "lab", "--cs-endpoint", "10.0.0.115",
            "--passphrase-file", str(passphrase)]


def test_several_hosts_and_an_older_bundle_install_and_verify(
        common: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    bundle = catalog.share_path(catalog.ASR_PREVIOUS_BUNDLE)
    code, out, err = install(capsys, "i1", "i2", *common, "--installer", bundle,
                             "--installer-sha256",
                             catalog.sha256_of(catalog.ASR_PREVIOUS_BUNDLE))
    assert code == 0, out + err
    assert "2 host(s): 2 changed" in out and "warning" not in err
    for name in ("i1", "i2"):
        state = lab_host(name).state
        assert installed_ua(state)[0] == catalog.ASR_PREVIOUS_VERSION  # type: ignore[index]
        assert registered_cs(state) == "10.0.0.115"


def test_version_and_mode_options(common: list[str], tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    bundle = catalog.share_path(catalog.ASR_LEGACY_BUNDLE)
    code, out, err = install(capsys, "old1", *common, "--installer", bundle, "--mode", "legacy",
                             "--version", catalog.ASR_LEGACY_VERSION)
    assert code == 0, out + err
    assert "no --installer-sha256" in err                       # warned, then done
    assert "old1  step 'Install and register Mobility service (legacy one-step)'  changed" \
        in out


def test_no_password_is_refused_before_any_logon(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PUSHINSTALL_PASSWORD", raising=False)
    passphrase = tmp_path / "p.txt"
    passphrase.write_text("x\n", encoding="utf-8")
    code, out, err = install(capsys, "srv01.corp.example", "--cs-endpoint", "10.0.0.115",
                             "--passphrase-file", str(passphrase), "--installer",
                             "\\\\srv\\share\\ua.exe", "-u", "CORP\\admin")
    assert code == 5 and out == ""
    assert err.startswith("<command line>:1:1: no password: the environment variable "
                          "PUSHINSTALL_PASSWORD is not set")


def test_a_bad_sha256_or_version_is_reported_against_the_option(
        common: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    bundle = catalog.share_path(catalog.ASR_BUNDLE)
    code, _, err = install(capsys, "h", *common, "--installer", bundle,
                           "--installer-sha256", "abc")
    assert code == 5
    assert err == ("<command line>:1:1: --installer-sha256: 'abc' is not a sha256 "
                   "(64 hexadecimal characters)\n")
    code, _, err = install(capsys, "h", *common, "--installer", bundle, "--version", "new")
    assert code == 5 and "--version: 'new' is not a version" in err
    code, _, err = install(capsys, "h", *common, "--installer", "\\\\srv\\share\\ua.exe")
    assert code == 5 and "--installer: cannot tell the version" in err
