"""The fault matrix in docs/lab.md is a contract: one lab host per row, each with the row's
fault, through the shipped ASR playbook in one run; each host must end with the row's status
and its host message or failed step's message must contain the row's text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_kit import cli

ROOT = Path(__file__).parent.parent


def _rows() -> list[tuple[str, str, str]]:
    text = (ROOT / "docs" / "lab.md").read_text()
    table = text.split("## Fault matrix", 1)[1]
    rows = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`{"):
            rows.append((cells[0].strip("`"), cells[1], cells[2]))
    return rows


def test_the_fault_matrix_holds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = _rows()
    assert len(rows) >= 12
    hosts = "".join(f"    fault{n:02d}: {{lab: {lab}}}\n" for n, (lab, _, _) in enumerate(rows))
    (tmp_path / "inv.yml").write_text(
        "all:\n  vars:\n    transport: lab\n    lab_wire: inprocess\n"
        "    cs_endpoint: 10.0.0.115\n    asr_passphrase: {env: H13_PASSPHRASE}\n"
        "    asr_installer_share: \\\\labshare\\asr\n  hosts:\n" + hosts)
    monkeypatch.delenv("PUSHINSTALL_LAB_WIRE", raising=False)
    # (cli's retries wait from 10 ms: the rows that retry end as they would after 1 s waits)
    done = cli("run", "-i", "inv.yml", str(ROOT / "playbooks" / "asr-mobility.yml"),
               "--jsonl", "run.jsonl", cwd=tmp_path, env={"H13_PASSPHRASE": "lab-passphrase"})
    assert "Traceback" not in done.stderr
    found: dict[str, tuple[str, list[str]]] = {}
    for line in (tmp_path / "run.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["kind"] == "step_result" and event["status"] == "failed":
            found.setdefault(event["host"], ("", []))[1].append(event["message"])
        elif event["kind"] == "host_finished":
            messages = found.get(event["host"], ("", []))[1]
            found[event["host"]] = (event["status"], [event["message"], *messages])
    for n, (lab, status, text) in enumerate(rows):
        got_status, messages = found[f"fault{n:02d}"]
        assert got_status == status, f"{lab}: {got_status} {messages}"
        if text != "-":
            assert any(text in m for m in messages), f"{lab}: {messages}"
