"""An unexpected error on one host fails that host, never the run: a lab host whose name is
over 255 bytes (its state file cannot exist) fails with the error and a please-report hint;
the other host is done, the summary comes out, no traceback."""

from __future__ import annotations

from pathlib import Path

from cli_kit import cli

from pushinstall.errors import BUG_HINT

ROOT = Path(__file__).parent.parent


def test_a_host_that_breaks_the_engine_fails_alone(tmp_path: Path) -> None:
    long_name = "h" * 300
    (tmp_path / "inv.yml").write_text(
        "all:\n  vars:\n    transport: lab\n    cs_endpoint: 10.0.0.115\n"
        "    asr_passphrase: {env: H13_PASSPHRASE}\n    asr_installer_share: \\\\labshare\\asr\n"
        f"  hosts:\n    {long_name}:\n    lab-fine:\n")
    done = cli("run", "-i", "inv.yml", str(ROOT / "playbooks" / "asr-mobility.yml"),
               cwd=tmp_path, env={"H13_PASSPHRASE": "lab-passphrase"})
    assert "Traceback" not in done.stderr
    assert done.returncode == 2, done.stdout + done.stderr
    assert "internal error: OSError" in done.stdout and BUG_HINT in done.stdout
    assert "2 host(s): 1 changed, 1 failed" in done.stdout
