"""directory, file and archive applied to the real lab model (its share `\\\\labshare\\asr`
and web server `labweb` stand for the network a Windows target would pull from)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from kit import apply_on, make_host, place, plan_on

from pushinstall.errors import RemoteOpFailed
from pushinstall.lab import catalog
from pushinstall.lab.host import LabHost
from pushinstall.model import Decision
from pushinstall.resources import archive, directory, file
from pushinstall.secret import Secret

DEST = "C:\\Temp\\ASR\\ua.exe"
BUNDLE_SHA = catalog.sha256_of(catalog.ASR_BUNDLE)


def test_directory_is_created_once(host: LabHost) -> None:
    args = {"path": "C:\\Temp\\ASR\\Logs"}
    assert plan_on(directory, args, host).status == Decision.CHANGE
    applied, _ = apply_on(directory, args, host)
    assert applied.changed and host.state.fs.is_dir("C:\\Temp\\ASR\\Logs")
    assert plan_on(directory, args, host).status == Decision.OK


def test_file_from_the_share_is_pulled_by_the_target(host: LabHost) -> None:
    # as the machine account: the session's own logon cannot reach the share (double hop)
    args = {"dest": DEST, "src": catalog.share_path(catalog.ASR_BUNDLE), "sha256": BUNDLE_SHA,
            "copy_as": "system"}
    assert plan_on(file, args, host).status == Decision.CHANGE
    applied, ctx = apply_on(file, args, host)
    assert applied.changed and ctx.sent == ["download"]
    assert host.calls[-1]["args"]["sha256"] == BUNDLE_SHA
    assert host.calls[-1]["args"]["run_as"] == "system"
    assert hashlib.sha256(host.file_content(DEST)).hexdigest() == BUNDLE_SHA
    assert plan_on(file, args, host).status == Decision.OK


def test_file_with_the_wrong_sha256_fails_and_leaves_nothing(host: LabHost) -> None:
    args = {"dest": DEST, "src": catalog.url(catalog.ASR_BUNDLE, https=True), "sha256": "0" * 64}
    with pytest.raises(RemoteOpFailed) as raised:
        apply_on(file, args, host)
    assert raised.value.error_type == "HashMismatch"
    assert not host.state.fs.is_file(DEST)


def test_file_share_credential_travels_as_data_for_the_double_hop() -> None:
    lab_host = make_host("web02", share_requires_credential=True)
    args = {"dest": DEST, "src": catalog.share_path(catalog.ASR_BUNDLE),
            "share_credential": {"username": "LAB\\svc-asr",
                                 "password": Secret("lab-share-password")}}
    applied, _ = apply_on(file, args, lab_host)
    assert applied.changed
    assert "lab-share-password" not in repr(lab_host.calls) + applied.message
    assert plan_on(file, args, lab_host).status == Decision.OK  # present; no hash to compare


def test_file_from_the_controller_is_pushed_only_when_it_differs(
        host: LabHost, tmp_path: Path) -> None:
    local = tmp_path / "UnifiedAgent.exe"
    local.write_bytes(b"MZ" + bytes(200_000))
    args = {"dest": DEST, "src": str(local)}
    plan = plan_on(file, args, host)
    assert (plan.status == Decision.CHANGE
            and plan.diff.startswith(f"file '{DEST}': absent -> sha256 "))
    applied, ctx = apply_on(file, args, host)
    assert applied.changed and "put_file" in ctx.sent
    assert host.file_content(DEST) == local.read_bytes()
    assert plan_on(file, args, host).status == Decision.OK  # equal hash: skipped
    local.write_bytes(b"MZ" + bytes(100))
    assert plan_on(file, args, host).status == Decision.CHANGE
    apply_on(file, args, host)
    assert host.file_content(DEST) == local.read_bytes()


def test_file_from_the_controller_must_match_the_playbook_hash(
        host: LabHost, tmp_path: Path) -> None:
    local = tmp_path / "UnifiedAgent.exe"
    local.write_bytes(b"tampered")
    args = {"dest": DEST, "src": str(local), "sha256": BUNDLE_SHA}
    assert plan_on(file, args, host).status == Decision.FAIL
    applied, ctx = apply_on(file, args, host)
    assert applied.failed and ctx.sent == []


def test_archive_extracts_once(host: LabHost) -> None:
    zip_path = "C:\\Temp\\ASR\\config.zip"
    place(host, zip_path, catalog.files()[catalog.CONFIG_ZIP])
    args = {"src": zip_path, "dest": "C:\\Temp\\ASR\\config"}
    assert plan_on(archive, args, host).status == Decision.CHANGE
    applied, _ = apply_on(archive, args, host)
    assert applied.changed and applied.message == "2 files extracted"
    assert host.state.fs.is_file("C:\\Temp\\ASR\\config\\config.json")
    assert plan_on(archive, args, host).status == Decision.OK
    place(host, zip_path, b"PK\x05\x06" + bytes(18))  # another (empty) zip
    assert plan_on(archive, args, host).status == Decision.CHANGE
