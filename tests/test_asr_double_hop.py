"""The double hop, over the lab's real PSRP wire: a remote session's copy from a share is
refused (access denied, as Windows does when the admin's NTLM/Kerberos logon cannot be
delegated), the failure says why and names the four fixes, and each fix works: a share
credential, the machine account (a one-shot SYSTEM task), an HTTPS source with a SAS URL kept
secret, and the controller pushing a local file. The lab stands in for the domain and share."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from asr_kit import cli, fleet, recap

from pushinstall.lab import catalog, lab_host

BUNDLE = catalog.ASR_BUNDLE
SHA = catalog.sha256_of(BUNDLE)
DEST = f"C:\\Temp\\ASR\\{BUNDLE}"
SAS = "sv=2022-11-02&sr=b&sig=SAS-SIGNATURE-d0ubleh0p"


def playbook(tmp_path: Path, **file_args: Any) -> str:
    """A one-step playbook copying the bundle with `file_args` (JSON is YAML)."""
    import json

    step = {"name": "Bundle", "file": {"dest": DEST, "sha256": SHA,
                                       "src": catalog.share_path(BUNDLE), **file_args}}
    path = tmp_path / "copy.yml"
    path.write_text(json.dumps({"name": "copy", "hosts": "all", "steps": [step]}),
                    encoding="utf-8")
    return str(path)


def test_a_session_copy_from_the_share_is_denied_and_names_the_four_fixes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = fleet(tmp_path, {"hop": None})
    code, out = cli(capsys, "run", "-i", inventory, playbook(tmp_path))
    assert code == 2 and recap(out) == {"hop": "failed"}, out
    assert "Access to the path '\\\\labshare\\asr\\" in out and "is denied" in out
    assert "the double hop" in out
    for fix in ("share_credential", "copy_as: system", "http(s) src", "controller path"):
        assert fix in out, fix
    assert not lab_host("hop").state.fs.is_file(DEST)


def test_a_share_credential_reaches_the_share(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "share.txt").write_text("lab-share-password\n", encoding="utf-8")
    inventory = fleet(tmp_path, {"cred": None}, share_password={"file": "share.txt"})
    book = playbook(tmp_path, share_credential={"username": "LAB\\svc-asr",
                                                "password": "{{ share_password }}"})
    code, out = cli(capsys, "run", "-i", inventory, book)
    assert code == 0 and recap(out) == {"cred": "changed"}, out
    assert "lab-share-password" not in out
    host = lab_host("cred")
    assert hashlib.sha256(host.file_content(DEST)).hexdigest() == SHA


def test_the_machine_account_copies_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = fleet(tmp_path, {"sys": None, "denied": {"lab": {
        "share_denies_machine_account": True}}})
    code, out = cli(capsys, "run", "-i", inventory, playbook(tmp_path, copy_as="system"))
    assert code == 2 and recap(out) == {"sys": "changed", "denied": "failed"}, out
    assert "(as DENIED$)" in out                    # the share does not grant the computer
    assert lab_host("sys").file_content(DEST)


def test_an_https_source_with_a_secret_sas_url(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "sas.txt").write_text(catalog.url(BUNDLE, https=True) + "?" + SAS + "\n",
                                      encoding="utf-8")
    inventory = fleet(tmp_path, {"web": None}, bundle_url={"file": "sas.txt"})
    report = tmp_path / "run.jsonl"
    code, out = cli(capsys, "run", "-i", inventory, playbook(tmp_path, src="{{ bundle_url }}"),
                    "--jsonl", str(report))
    assert code == 0 and recap(out) == {"web": "changed"}, out
    host = lab_host("web")
    assert hashlib.sha256(host.file_content(DEST)).hexdigest() == SHA
    assert "SAS-SIGNATURE" not in out + report.read_text() + repr(host.calls)


def test_the_controller_pushes_a_local_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    local = tmp_path / BUNDLE
    local.write_bytes(catalog.files()[BUNDLE])
    inventory = fleet(tmp_path, {"push": None})
    code, out = cli(capsys, "run", "-i", inventory, playbook(tmp_path, src=str(local)))
    assert code == 0 and recap(out) == {"push": "changed"}, out
    assert "file_begin" in lab_host("push").op_log
