"""The console as a person sees it: a live view in a real pseudo-terminal, plain lines in a pipe."""

from __future__ import annotations

import os
import pty
import re
import select
from pathlib import Path

import warm
from cli_kit import PLAYBOOK, REPO, SECRETS, cli, write_inventory

ESCAPE = "\x1b"
ISO_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ")


def run_in_pty(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run `pushinstall ARGS` with a pty as its terminal; everything it drew, and its exit."""
    master, slave = pty.openpty()
    process = warm.Popen(args, cwd=REPO, stdin=slave, stdout=slave, stderr=slave,
                         env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "140",
                              "LINES": "40", **env})
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:    # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    code = process.wait(timeout=60)
    os.close(master)
    return code, b"".join(chunks).decode("utf-8", "replace")


def test_live_view_on_a_terminal(tmp_path: Path) -> None:
    # a 2 s installer keeps hosts in flight long enough for several redraws
    inventory = write_inventory(tmp_path, {
        "h-ok": "installer_seconds: 2", "h-fail": "installer_exit_code: 14",
        "h-down": "unreachable: true"})
    code, screen = run_in_pty(["run", "-i", str(inventory), str(PLAYBOOK)], {})
    assert code == 2, screen
    assert ESCAPE + "[" in screen                      # colour and cursor control
    frames = set(re.findall(r"(\d)/3 hosts", screen))
    assert len(frames) >= 2, screen                    # the bar moved while the run went
    assert "Install Mobility service" in screen        # a host's current step, in flight
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    assert re.search(r"h-ok\s+Install Mobility service\s+\d+\.\ds", text), text
    recap = screen[screen.index("RECAP"):]
    # failed hosts first, with the first error line
    assert recap.index("h-fail") < recap.index("h-down") < recap.index("h-ok")
    assert "invalid passphrase" in recap
    assert "exit 2" in recap
    # the failure was printed above the bar as it happened, not only in the recap
    assert screen.index("invalid passphrase") < screen.index("RECAP")
    assert not any(secret in screen for secret in SECRETS)


def test_no_color_keeps_the_live_view_but_drops_colour(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path, {"h-ok": ""})
    code, screen = run_in_pty(["run", "-i", str(inventory), str(PLAYBOOK), "--no-color"], {})
    assert code == 0, screen
    assert "RECAP" in screen
    assert not re.search(r"\x1b\[[0-9;]*3[0-9](;[0-9]+)*m", screen)   # no foreground colour
    code, screen = run_in_pty(["run", "-i", str(inventory), str(PLAYBOOK)], {"NO_COLOR": "1"})
    assert code == 0
    assert not re.search(r"\x1b\[[0-9;]*3[0-9](;[0-9]+)*m", screen)


def test_piped_output_is_plain_timestamped_lines(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path)
    result = cli("run", "-i", str(inventory), str(PLAYBOOK))
    assert result.returncode == 2
    assert ESCAPE not in result.stdout
    events, recap = result.stdout.split("\nRECAP\n")
    lines = [line for line in events.splitlines() if line.strip()]
    assert lines and all(ISO_LINE.match(line) for line in lines), result.stdout
    assert recap.splitlines()[0].startswith("h-ok ")    # the recap is a table, not a log
    assert ISO_LINE.match(recap.splitlines()[-1])       # its last line says when the run ended
    assert any("h-fail" in line and "failed" in line for line in lines)
    assert "| Installer finished with forced exit code 14." in result.stdout   # the log tail
    assert "ok=" in result.stdout and "exit 2" in result.stdout


def test_verbose_adds_ok_steps_and_timings(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path, {"h-ok": ""})
    quiet = cli("run", "-i", str(inventory), str(PLAYBOOK))
    loud = cli("run", "-i", str(inventory), str(PLAYBOOK), "-v")
    assert "  ok" not in quiet.stdout.replace("ok=", "")
    assert "step 'Staging directory'  ok" in loud.stdout
    assert re.search(r"\(\d+\.\d\ds\)", cli("lab", "reset").stdout
                     + cli("run", "-i", str(inventory), str(PLAYBOOK), "-v").stdout)


def test_vv_traces_ops_and_vvv_their_json_secrets_masked(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path, {"h-ok": ""})
    plain = cli("run", "-i", str(inventory), str(PLAYBOOK), "--check", "-v")
    assert " op batch " not in plain.stderr
    traced = cli("run", "-i", str(inventory), str(PLAYBOOK), "-vv")
    assert re.search(r"h-ok  op batch  \d+ B -> \d+ B", traced.stderr), traced.stderr
    assert "request {" not in traced.stderr
    full = cli("run", "-i", str(inventory), str(PLAYBOOK), "-vvv", "--check")
    assert 'request {"op": "batch"' in full.stderr and "answer  {" in full.stderr
    for secret in SECRETS:
        assert secret not in traced.stderr + full.stderr + traced.stdout + full.stdout
