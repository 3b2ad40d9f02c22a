"""The runner: sinks (a JSONL log per run in the state dir, history), `install`'s one host.

Hosts are lab hosts from a real inventory file, reached through the real transport factory
(in process: the inventory sets `lab_wire: false`); the playbook is the shipped one.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from cli_kit import PLAYBOOK, cli, write_inventory
from kit import INSTALL, asr_playbook, lab_fleet

from pushinstall.engine import Backoff, RunOptions
from pushinstall.errors import InputError
from pushinstall.paths import state_dir
from pushinstall.report.history import history_path
from pushinstall.runner import _install_hosts, _run
from pushinstall.secret import MASK, Secret


def test_a_run_leaves_its_jsonl_log_history_and_reports(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    extra_jsonl = tmp_path / "events.jsonl"
    options = {"jsonl_path": str(extra_jsonl), "report_dir": str(tmp_path / "reports")}
    fleet = lab_fleet(tmp_path, 3, {1: {"installer_exit_code": 14}})
    code = _run(fleet, asr_playbook(tmp_path), RunOptions(run_id="r-test"), options)
    assert code == 2
    log = state_dir() / "runs" / "r-test.jsonl"
    kinds = [json.loads(line)["kind"] for line in log.read_text().splitlines()]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert log.read_text() == extra_jsonl.read_text()
    assert (tmp_path / "reports").is_dir() and any((tmp_path / "reports").iterdir())
    with sqlite3.connect(history_path(state_dir())) as db:
        rows = dict(db.execute("SELECT host, status FROM host_results WHERE run_id='r-test'"))
    assert rows == {"web000": "changed", "web001": "failed", "web002": "changed"}
    out = capsys.readouterr().out
    assert f"web001  step '{INSTALL}'  failed: exit 14" in out
    assert "web001  ok=2 changed=3 failed=1 unreachable=0 skipped=0  failed" in out
    assert "web000  ok=5 changed=5 failed=0 unreachable=0 skipped=5  changed" in out


def test_install_host_takes_secrets_from_env_and_file(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    passphrase = tmp_path / "p.txt"
    passphrase.write_text("\ufefflab-passphrase\n", encoding="utf-8")
    monkeypatch.setenv("MY_PW", "Pa55word!")
    (host,) = _install_hosts({
        "host": ("web01",), "cs_endpoint": "10.0.0.115", "passphrase_file": str(passphrase),
        "installer": r"\\srv\share\ua.exe", "transport": "lab", "username": "admin",
        "password_env": "MY_PW", "auth": "ntlm", "no_tls": True, "asr_version": "9.62.7172.1",
        "installer_sha256": "0" * 64,
    })
    assert host.name == "web01" and host.connection.transport == "lab"
    assert host.connection.password == Secret("Pa55word!")
    assert host.connection.tls is False and host.connection.auth == "ntlm"
    assert host.vars["asr_passphrase"].reveal() == "lab-passphrase"
    assert str(host.vars["asr_passphrase"]) == MASK
    assert host.vars["cs_endpoint"] == "10.0.0.115"


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot read"),
    ("  \n", "is empty"),
])
def test_install_rejects_a_bad_passphrase_file(tmp_path: Path, content: str | None,
                                               message: str) -> None:
    path = tmp_path / "p.txt"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError, match=message) as caught:
        _install_hosts({"host": ("h",), "cs_endpoint": "x", "passphrase_file": str(path),
                        "installer": "ua.exe"})
    assert caught.value.exit_code == 5


def test_retry_delay_is_the_first_wait_of_every_retry(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """`--retry-delay` (PUSHINSTALL_RETRY_DELAY) reaches the engine's one backoff: the
    unreachable host's connect retries wait what it says; out of range is exit 5, located."""
    waits: list[tuple[float, float]] = []
    real = Backoff.delay

    def recorded(self: Backoff, attempt: int) -> float:
        waits.append((self.initial, real(self, attempt)))
        return waits[-1][1]

    monkeypatch.setattr(Backoff, "delay", recorded)
    inventory = write_inventory(tmp_path, {"h-down": "unreachable: true"})
    assert cli("run", "-i", str(inventory), str(PLAYBOOK), "--retry-delay", "0").returncode == 4
    assert len(waits) >= 3 and all(wait == (0.0, 0.0) for wait in waits)
    waits.clear()
    assert cli("check", "-i", str(inventory), str(PLAYBOOK),
               env={"PUSHINSTALL_RETRY_DELAY": "0.002"}).returncode == 4
    assert waits and all(initial == 0.002 and wait <= 0.002 * 2 ** 5 for initial, wait in waits)
    wrong = cli("run", "-i", str(inventory), str(PLAYBOOK), "--retry-delay", "31")
    assert wrong.returncode == 5 and wrong.stderr.startswith("<command line>:1:")
    assert "--retry-delay" in wrong.stderr and "Traceback" not in wrong.stderr
