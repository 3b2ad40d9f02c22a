"""The passphrase never lands anywhere but the secret file: every shipped playbook runs over
the lab's PSRP wire with a recognisable passphrase (and source configuration), converging and
failing, then every byte pushinstall wrote (console, JSONL, JSON/JUnit/HTML reports, the
history database) and everything the lab recorded (state files, op logs, blobs) is searched.
The secret file itself is removed by the step whatever the installer answered, so nothing is
excepted. The lab stands in for Windows."""

from __future__ import annotations

from pathlib import Path

import pytest
from asr_kit import MOBILITY, UNINSTALL, UPGRADE, cli, fleet

from pushinstall.lab import catalog, lab_host

PASSPHRASE = "Pa55phrase-GREP-ME-4c1d"
CONFIG = '{"ApplianceName": "GREP-ME-CONFIG-77e2"}'
MARKS = (PASSPHRASE, "GREP-ME-CONFIG-77e2")


def _every_byte(*roots: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for root in roots for p in root.rglob("*") if p.is_file()]


def test_no_playbook_leaves_the_passphrase_anywhere(
        tmp_path: Path, state_dir: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "config.json").write_text(CONFIG, encoding="utf-8")
    # the installers' restarts take 0.2 s, not the lab's 2, and the wait for one polls from
    # 10 ms: what is searched is what the runs wrote, not how long they waited
    monkeypatch.setenv("PUSHINSTALL_RETRY_DELAY", "0.01")
    quick = {"reboot_seconds": 0.2}
    hosts = {
        "fresh": {"lab": quick},
        "failing": {"lab": {"configurator_exit_code": 14, **quick}},
        "old": {"lab": {"installed_version": catalog.ASR_PREVIOUS_VERSION,
                        "registered_to": "10.0.0.115", "reboot_seconds": 0}},
        "modern": {"asr_mode": "modernized", "lab": quick},
        "legacy": {"asr_mode": "legacy", "asr_bundle": catalog.ASR_LEGACY_BUNDLE,
                   "asr_version": catalog.ASR_LEGACY_VERSION,
                   "asr_bundle_sha256": catalog.sha256_of(catalog.ASR_LEGACY_BUNDLE),
                   "lab": quick},
    }
    inventory = fleet(secrets, hosts, passphrase=PASSPHRASE,
                      asr_source_config={"file": "config.json"})
    reports = tmp_path / "out"
    output = []
    for book in (MOBILITY, UPGRADE, UNINSTALL):
        for mode in ("run", "check"):
            code, out = cli(capsys, mode, "-i", inventory, book, "--jsonl",
                            str(reports / f"{Path(book).stem}-{mode}.jsonl"),
                            "--report-dir", str(reports / Path(book).stem))
            assert code in (0, 2), out
            output.append(out)
    assert "failing  step 'Register with the configuration server'  failed: exit 14" in \
        output[0]
    for name in hosts:
        lab_host(name).flush()
        assert not lab_host(name).state.fs.is_file("C:\\ProgramData\\pushinstall\\"
                                                    "passphrase.txt")
    written = _every_byte(reports, state_dir)
    assert any(p.suffix == ".html" for p, _ in written)
    assert any(data.startswith(b"SQLite format 3") for _, data in written)   # the history
    assert any(p.name.endswith(".json") and "lab" in p.parts for p, _ in written)
    for mark in MARKS:
        assert mark not in "".join(output)
        leaks = [str(p) for p, data in written if mark.encode() in data]
        assert leaks == [], (mark, leaks)
