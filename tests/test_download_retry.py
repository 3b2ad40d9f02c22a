"""A download the web server refuses with HTTP 503 is transient, as a WinRM 503 is: with
`retries: 3` the step retries it and the host ends changed; with `retries: 0` it fails.
`download` is safe to redo: the target writes a temp file and moves it in after the sha256
check."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_kit import cli

from pushinstall.errors import RemoteOpFailed

MSI_SHA256 = "20a5896283f11684ec4f669c035c76766938c9ee80cf5735e869a9e4da6b35c5"


def test_which_download_errors_are_transient() -> None:
    def transient(message: str, kind: str = "DownloadFailed") -> bool:
        return RemoteOpFailed(message, error_type=kind).transient

    assert transient("HTTP 503 Service Unavailable from http://labweb/asr/x.msi")
    assert transient("HTTP 429 Too Many Requests from https://x/y")
    assert not transient("HTTP 404 Not Found from http://labweb/asr/x.msi")
    assert not transient("HTTP 503 Service Unavailable", kind="NotFound")


@pytest.mark.parametrize(("retries", "code"), [(3, 0), (0, 2)])
def test_a_download_answered_503_follows_the_retry_policy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, retries: int, code: int) -> None:
    (tmp_path / "inv.yml").write_text(
        "all:\n  vars: {transport: lab, lab_wire: inprocess}\n  hosts:\n"
        "    lab-dl:\n      lab: {http_503: 2}\n")
    (tmp_path / "pb.yml").write_text(
        f"name: download\nhosts: all\nsettings: {{retries: {retries}}}\nsteps:\n"
        "  - name: VM agent\n    file:\n"
        "      src: http://labweb/asr/WindowsAzureVmAgent.msi\n"
        "      dest: 'C:\\Temp\\WindowsAzureVmAgent.msi'\n"
        f"      sha256: {MSI_SHA256}\n")
    monkeypatch.delenv("PUSHINSTALL_LAB_WIRE", raising=False)
    done = cli("run", "-i", "inv.yml", "pb.yml", cwd=tmp_path)   # retries wait from 10 ms
    assert done.returncode == code, done.stdout + done.stderr
    if code:
        assert "HTTP 503" in done.stdout
    else:
        assert "1 host(s): 1 changed" in done.stdout
