"""The broken-playbook corpus: each file's first line says the one error line it must produce
(`# expect: :LINE:COL: message (expected)`); each must exit 5 with exactly that line and no
traceback. Plus `-e` / extra-vars cases and the console script itself.

Every case runs `pushinstall validate` against the lab inventory: nothing is mocked, no host is
contacted and no secret is read.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from kit import expected_error, run_cli

ROOT = Path(__file__).parent.parent
CORPUS = Path(__file__).parent / "corpus" / "playbook"
EXTRA = Path(__file__).parent / "corpus" / "extra_vars"
CASES = sorted(CORPUS.glob("*.yml"))
LAB = str(ROOT / "inventories" / "lab.yml")
EXAMPLE = str(ROOT / "inventories" / "example.yml")
ASR = str(ROOT / "playbooks" / "asr-mobility.yml")


def test_the_corpus_is_big_enough() -> None:
    assert len(CASES) >= 22


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_broken_playbook(case: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = expected_error(case)
    code, out, err = run_cli(["validate", "-i", LAB, str(case)], capsys)
    assert (code, out) == (5, "")
    assert err == expected + "\n"


@pytest.mark.parametrize(("extra", "expected"), [
    (["cs_endpoint"], "<command line>:1:1: -e 'cs_endpoint': 'cs_endpoint' has no '=' "
     "(KEY=VALUE, @FILE.yml or a JSON mapping)"),
    (["9lives=1"], "<command line>:1:1: -e '9lives=1': '9lives' is not a variable name "
     "(letters, digits and _, not starting with a digit)"),
    (['{"cs_endpoint": "10.0.0.1"'], "<command line>:1:1: -e '{\"cs_endpoint\": \"10.0.0.1\"': "
     "YAML syntax error: expected ',' or '}', but got '<stream end>' "
     "(a JSON mapping such as {\"key\": \"value\"})"),
    (["=ams"], "<command line>:1:1: -e '=ams': '' is not a variable name "
     "(letters, digits and _, not starting with a digit)"),
    ([""], "<command line>:1:1: -e '' is empty (KEY=VALUE, @FILE.yml or a mapping)"),
    (["@"], "<command line>:1:1: -e '@' names no file (-e @vars.yml)"),
    (["@/nonexistent/vars.yml"], "/nonexistent/vars.yml:1:1: file not found (an existing file)"),
    ([f"@{EXTRA / 'list.yml'}"],
     f"{EXTRA / 'list.yml'}:1:1: extra vars file is a list "
     "(a mapping of variable names to values)"),
    ([f"@{EXTRA / 'bad_name.yml'}"],
     f"{EXTRA / 'bad_name.yml'}:2:1: -e '@{EXTRA / 'bad_name.yml'}': '9lives' is not a variable "
     "name (letters, digits and _, not starting with a digit)"),
    ([f"@{EXTRA / 'syntax.yml'}"],
     f"{EXTRA / 'syntax.yml'}:2:1: YAML syntax error: expected ',' or ']', but got "
     "'<stream end>' (valid YAML)"),
    (["on_pending=sometimes"], None),
])
def test_bad_extra_vars(extra: list[str], expected: str | None,
                        capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["validate", "-i", LAB, str(CORPUS.parent.parent / "data" / "gate.yml")]
    for value in extra:
        argv += ["-e", value]
    code, _, err = run_cli(argv, capsys)
    assert code == 5
    if expected is None:   # a value from -e is checked again after templating, at its use
        expected = (f"{argv[3]}:7:19: 'on_pending' of 'pending_reboot' is 'sometimes', after "
                    "templating for host 'lab-web01' (one of: fail, warn, reboot)")
    assert err == expected + "\n"


@pytest.mark.parametrize(("argv", "expected"), [
    (["validate", "-i", LAB, "/nonexistent/playbook.yml"],
     "/nonexistent/playbook.yml:1:1: file not found (an existing file)"),
    (["validate", "-i", LAB, ASR, "--limit", "lab-web9"],
     "<command line>:1:1: --limit 'lab-web9' matches no host "
     "(a host, group or glob of the inventory)"),
])
def test_bad_command_line(argv: list[str], expected: str,
                          capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(argv, capsys)
    assert code == 5
    assert err == expected + "\n"


@pytest.mark.parametrize("inventory", [EXAMPLE, LAB])
def test_the_shipped_playbook_validates(inventory: str, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ASR_PUSH_PASSWORD", "ASR_CS_PASSPHRASE"):
        monkeypatch.setenv(name, "x")   # validate reads env and file secrets (issue 11)
    code, out, err = run_cli(["validate", "-i", inventory, ASR], capsys)
    hosts = 24 if inventory == EXAMPLE else 7
    assert (code, out, err) == (0, f"playbook OK: 15 steps, {hosts} hosts\n", "")


def test_extra_vars_win_and_fix_an_undefined_variable(capsys: pytest.CaptureFixture[str]) -> None:
    case = str(CORPUS / "undefined_var.yml")
    code, out, _ = run_cli(["validate", "-i", LAB, case, "-e", "asr_instaler_share=\\\\x\\y"],
                           capsys)
    assert (code, out) == (0, "playbook OK: 1 step, 7 hosts\n")


def test_console_script_exit_code_and_no_traceback() -> None:
    case = CORPUS / "unknown_type.yml"
    proc = subprocess.run(
        [sys.executable, "-m", "pushinstall", "validate", "-i", LAB, str(case)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 5
    assert proc.stderr.startswith(f"{case}:6:5: unknown key 'pakage' in step "
                                  "'Install Mobility service'; did you mean 'package'?")
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
