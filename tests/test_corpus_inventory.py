"""The broken-inventory corpus: each file says on its first line the one error line it must
produce (`# expect: :LINE:COL: message (expected)`); each must exit 5 with exactly that line
and no traceback. Plus command-line cases (`--limit`, `--host`, missing files)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from kit import expected_error, run_cli, write_file

from pushinstall.secret import MASK

CORPUS = Path(__file__).parent / "corpus" / "inventory"
CASES = sorted(CORPUS.glob("*.yml"))
LAB = str(Path(__file__).parent.parent / "inventories" / "lab.yml")


def test_the_corpus_is_big_enough() -> None:
    assert len(CASES) >= 22


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_broken_inventory(case: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = expected_error(case)
    code, _, err = run_cli(["inventory", "-i", str(case)], capsys)
    assert code == 5
    assert err == expected + "\n"


@pytest.mark.parametrize(("argv", "expected"), [
    (["inventory", "-i", LAB, "--limit", "nosuchhost"],
     "<command line>:1:1: --limit 'nosuchhost' matches no host "
     "(a host, group or glob of the inventory)"),
    (["inventory", "-i", LAB, "--limit", "lab_ams:&lab_dub"],
     "<command line>:1:1: --limit 'lab_ams:&lab_dub' matches no host "
     "(a host, group or glob of the inventory)"),
    (["inventory", "-i", LAB, "--host", "lab-web1"],
     "<command line>:1:1: --host 'lab-web1' is not in the inventory; did you mean 'lab-web01'? "
     "(a host name from 'pushinstall inventory')"),
    (["inventory", "-i", LAB, "--limit", "@/nonexistent/hosts.txt"],
     "<command line>:1:1: cannot read limit file '/nonexistent/hosts.txt': "
     "No such file or directory (a file with one host a line)"),
    (["inventory", "-i", "/nonexistent/inv.yml"],
     "/nonexistent/inv.yml:1:1: file not found (an existing file)"),
])
def test_bad_command_line(argv: list[str], expected: str,
                          capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(argv, capsys)
    assert code == 5
    assert err == expected + "\n"


def test_console_script_exit_code_and_no_traceback() -> None:
    case = CORPUS / "circular_groups.yml"
    proc = subprocess.run([sys.executable, "-m", "pushinstall", "inventory", "-i", str(case)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 5
    assert proc.stderr.startswith(f"{case}:9:9: circular groups: a -> b -> a")
    assert "Traceback" not in proc.stderr


SECRETS = ("hunter2", "topsecret", "sharepw", "nestedpw", "listpw", "winrmpw")

NESTED = """\
all:
  vars:
    transport: lab
    ansible_become_pass: hunter2
  hosts:
    h1:
      ansible_winrm_password: winrmpw
      lab: {cs_passphrase: topsecret, share_password: sharepw, os: "2016"}
      share_credential: {username: CORP\\svc, password: nestedpw}
      creds:
        - {username: u1, password: listpw}
"""


@pytest.mark.parametrize("as_json", [False, True])
def test_inventory_host_masks_secret_names_at_every_depth(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], as_json: bool) -> None:
    inventory = write_file(tmp_path, "inv.yml", NESTED)
    code, out, err = run_cli(["inventory", "-i", inventory, "--host", "h1",
                              *(["--json"] if as_json else [])], capsys)
    assert code == 0
    for secret in SECRETS:
        assert secret not in out + err
    shown = json.loads(out) if as_json else None
    if shown is not None:
        assert shown["vars"]["lab"]["cs_passphrase"] == MASK
        assert shown["vars"]["lab"]["os"] == "2016"          # not a secret: shown
        assert shown["vars"]["share_credential"] == {"username": "CORP\\svc", "password": MASK}
        assert shown["vars"]["creds"] == [{"username": "u1", "password": MASK}]
        assert shown["vars"]["ansible_become_pass"].startswith(MASK)
    else:
        assert "username: CORP\\svc" in out
        assert out.count(MASK) >= 6
    # a plaintext `_pass` var earns the plaintext warning, like a password does
    assert "inv.yml:4:26: warning: plaintext password" in err
