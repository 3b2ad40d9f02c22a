"""Hostile input ends cleanly: alias bombs, deep nesting, endless or special files, huge host
ranges and runaway templates each end with exit 5, one located line, no traceback, within
10 s of CPU and 500 MB.

Every case runs the real `pushinstall` in a process of its own (a hang or a memory blow-up must
not take the test run with it), forked from a warm one (tests/warm.py), and reads its peak
memory from `wait4`.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
import warm

ROOT = Path(__file__).parent.parent
LAB = str(ROOT / "inventories" / "lab.yml")
ASR = str(ROOT / "playbooks" / "asr-mobility.yml")
LIMIT_S = 10.0      # seconds of CPU: a wall-clock bound would measure the machine's load
HANG_S = 120.0      # wall clock, only so that a process stuck waiting cannot hang the suite
LIMIT_MB = 500


def bounded_run(argv: list[str], cwd: Path) -> tuple[int, str]:
    """Run `pushinstall argv`; kill it past LIMIT_S of CPU; assert it stayed under LIMIT_MB and
    printed no traceback. Returns (exit code, stderr)."""
    env = {**os.environ, "PUSHINSTALL_STATE_DIR": str(cwd / "state")}
    with open(cwd / "stderr.txt", "wb") as stderr, warm.Popen(
            argv, cwd=cwd, env=env, stderr=stderr, cpu_seconds=int(LIMIT_S)) as proc:
        try:
            proc.wait(timeout=HANG_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"pushinstall {argv[0]} still running after {HANG_S} s")
    assert proc.returncode != -signal.SIGXCPU, f"pushinstall {argv[0]} used {LIMIT_S} s of CPU"
    err = (cwd / "stderr.txt").read_text(errors="replace")
    # the peak of the whole process: its own work plus the modules a cold start imports too
    peak_kb = proc.rusage["ru_maxrss"]
    assert peak_kb < LIMIT_MB * 1024, f"peak {peak_kb // 1024} MB"
    assert "Traceback" not in err
    assert proc.returncode is not None
    return proc.returncode, err


BILLION_LAUGHS = """all:
  hosts:
    h1:
  vars:
    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
    g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
    h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
    i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


@pytest.mark.parametrize("command", [["inventory"], ["inventory", "--host", "h1"],
                                     ["validate", "PLAYBOOK"]])
def test_an_alias_bomb_is_refused_where_it_explodes(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / "inv.yml").write_text(BILLION_LAUGHS)
    argv = [command[0], "-i", "inv.yml", *command[1:]]
    argv = [ASR if word == "PLAYBOOK" else word for word in argv]
    code, err = bounded_run(argv, tmp_path)
    assert code == 5
    assert err.startswith("inv.yml:")
    assert "aliases expand this to more than 5000000 values" in err


@pytest.mark.parametrize(("text", "where"), [
    ("all:\n  vars:\n    deep: " + "[" * 900 + "]" * 900 + "\n", "inv.yml:3:"),
    ("all:\n  vars:\n    deep: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n", "inv.yml:3:"),
])
def test_deep_nesting_is_refused(tmp_path: Path, text: str, where: str) -> None:
    (tmp_path / "inv.yml").write_text(text)
    code, err = bounded_run(["inventory", "-i", "inv.yml"], tmp_path)
    assert code == 5
    assert err.startswith(where) and "nesting deeper than 100 levels" in err


def test_deep_extra_vars_json_is_refused(tmp_path: Path) -> None:
    deep = '{"x": ' + "[" * 50_000 + "]" * 50_000 + "}"
    code, err = bounded_run(["validate", "-i", LAB, ASR, "-e", deep], tmp_path)
    assert code == 5
    assert err.startswith("<command line>:1:1: -e ") and "nesting deeper than 100" in err


@pytest.mark.parametrize("special", ["/dev/zero", "FIFO"])
def test_extra_vars_from_a_special_file_are_refused(tmp_path: Path, special: str) -> None:
    if special == "FIFO":
        os.mkfifo(tmp_path / "vars.fifo")
        special = "vars.fifo"
    code, err = bounded_run(["validate", "-i", LAB, ASR, "-e", "@" + special], tmp_path)
    assert code == 5
    assert err == f"{special}:1:1: is not a regular file (a UTF-8 YAML file)\n"


@pytest.mark.parametrize("special", ["/dev/zero", "FIFO", "BIG"])
def test_a_secret_file_that_is_special_or_huge_is_refused_at_run(tmp_path: Path,
                                                                 special: str) -> None:
    if special == "FIFO":
        os.mkfifo(tmp_path / "pass.fifo")
        special = str(tmp_path / "pass.fifo")
    elif special == "BIG":
        (tmp_path / "big.txt").write_bytes(b"x" * (1024 * 1024))
        special = str(tmp_path / "big.txt")
    (tmp_path / "inv.yml").write_text(
        "all:\n  vars:\n    transport: lab\n    cs_endpoint: 10.0.0.115\n"
        f"    asr_passphrase: {{file: {special}}}\n    asr_installer_share: \\\\labshare\\asr\n"
        "  hosts:\n    lab-h1:\n")
    code, err = bounded_run(["run", "-i", "inv.yml", ASR], tmp_path)
    assert code == 5
    assert err.startswith("inv.yml:5:21: secret file ")
    assert ("is not a regular file" in err) if special != str(tmp_path / "big.txt") \
        else ("larger than 65536 bytes" in err)


def test_the_host_limit_applies_to_the_product_of_ranges(tmp_path: Path) -> None:
    (tmp_path / "inv.yml").write_text("all:\n  hosts:\n    r[1:100]-[1:100]-[1:100]-[1:100]:\n")
    code, err = bounded_run(["inventory", "-i", "inv.yml"], tmp_path)
    assert code == 5
    assert err == ("inv.yml:3:5: host name 'r[1:100]-[1:100]-[1:100]-[1:100]' expands to more "
                   "than 100000 hosts (at most 100000 hosts from one name)\n")


def test_a_100k_host_range_lists_quickly(tmp_path: Path) -> None:
    (tmp_path / "inv.yml").write_text(
        "all:\n  vars: {transport: lab}\n  hosts:\n    web[000001:100000]:\n")
    code, err = bounded_run(["inventory", "-i", "inv.yml"], tmp_path)
    assert (code, err) == (0, "")


@pytest.mark.parametrize("special", ["/dev/zero", "FIFO", "BIG"])
@pytest.mark.parametrize("command", ["inventory", "run"])
def test_a_limit_file_that_is_special_or_huge_is_refused(tmp_path: Path, special: str,
                                                         command: str) -> None:
    if special == "FIFO":
        os.mkfifo(tmp_path / "hosts.fifo")
        special = "hosts.fifo"
    elif special == "BIG":   # one host name a line, past MAX_LIMIT_BYTES (16 MiB)
        (tmp_path / "hosts.txt").write_bytes(b"lab-web01\n" * (1_700_000))
        special = "hosts.txt"
    argv = ["inventory", "-i", LAB] if command == "inventory" else ["run", "-i", LAB, ASR]
    code, err = bounded_run([*argv, "--limit", "@" + special], tmp_path)
    assert code == 5
    expected = "larger than 16777216 bytes" if special == "hosts.txt" \
        else "is not a regular file"
    assert err == (f"{special}:1:1: limit file {expected} (a regular UTF-8 text file of at "
                   "most 16777216 bytes, one host a line)\n")


@pytest.mark.parametrize(("template", "message"), [
    ("{{ 'x' * 2000000000 }}", "the template builds a value over 1000000 long"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
     "the template loops over more than 1000000 items"),
    ("{{ 2 ** 100000000 }}", "the template computes a number over 65536 bits"),
    ("{{ (2 ** 4000) ** 4000 }}", "the template computes a number over 65536 bits"),
    ("{{ 9 ** 9 ** 9 ** 9 }}", "File name too long"),   # a path no file system takes
    ("{% for i in range(90000) %}{{ 'abcdefghijklmnop' }}{% endfor %}",
     "the template renders more than 1000000 characters"),
    # nested loops over a big string or list: each item a loop takes counts, as range()'s do
    ("{% set x = 'y' * 900000 %}{% for a in x %}{% for b in x %}{% endfor %}{% endfor %}",
     "the template loops over more than 1000000 items"),
    ("{% set x = ['y'] * 900000 %}{% for a in x %}{% for b in x %}{% endfor %}{% endfor %}",
     "the template loops over more than 1000000 items"),
    # growth past any bound in one step, refused before the step runs
    ("{% set a = 'x' * 900000 %}{{ a | replace('x', a) }}",
     "the template builds a value over 1000000 long"),
    ("{{ (['x' * 900000] * 3000) | join }}", "the template builds a value over 1000000 long"),
    ("{% set a = 'x' * 900000 %}{{ (a ~ a ~ a ~ a) | length }}",
     "the template builds a value over 1000000 long"),
    ("{{ [[['x' * 1000] * 1000] * 1000] }}", "the template builds a value over 1000000 long"),
    ("{{ 'x'.ljust(2000000000) }}", "the template builds a value over 1000000 long"),
    ("{{ '{:2000000000}'.format(1) }}", "the template builds a value over 1000000 long"),
])
def test_a_runaway_template_in_a_host_var_is_refused(tmp_path: Path, template: str,
                                                      message: str) -> None:
    (tmp_path / "inv.yml").write_text(
        "all:\n  vars:\n    transport: lab\n    cs_endpoint: 10.0.0.115\n"
        "    asr_passphrase: pass\n"
        f"    asr_installer_share: \"{template}\"\n  hosts:\n    lab-h1:\n")
    code, err = bounded_run(["validate", "-i", "inv.yml", ASR], tmp_path)
    assert code == 5
    assert message in err and err.count("\n") <= 2
    assert re.search(r"^\S+\.yml:\d+:\d+: ", err.splitlines()[-1]), err   # located


def test_a_bad_utf8_byte_is_located_by_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "inv.yml").write_bytes(b"all:\n  hosts:\n    h\xe9llo:\n")
    code, err = bounded_run(["inventory", "-i", "inv.yml"], tmp_path)
    assert code == 5
    assert err == "inv.yml:3:6: not UTF-8 text (byte 19) (a UTF-8 YAML file)\n"


def test_a_negative_lab_number_is_refused(tmp_path: Path) -> None:
    (tmp_path / "inv.yml").write_text(
        "all:\n  vars: {transport: lab}\n  hosts:\n    h1:\n      lab: {disk_free_bytes: -1}\n")
    code, err = bounded_run(["validate", "-i", "inv.yml", ASR], tmp_path)
    assert code == 5
    assert err == ("inv.yml:5:13: lab var 'disk_free_bytes' is '-1' for host 'h1' "
                   "(an integer of 0 or more)\n")


def test_a_command_line_longer_than_windows_takes_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pb.yml").write_text(
        "name: long\nhosts: all\nsteps:\n  - name: huge\n    command:\n"
        "      path: 'C:\\Windows\\System32\\cmd.exe'\n"
        "      arguments: ['/c', '{{ \"x\" * 40000 }}']\n")
    code, err = bounded_run(["validate", "-i", LAB, "pb.yml"], tmp_path)
    assert code == 5
    assert err == ("pb.yml:7:18: the command line of step 'huge' is 40033 characters long "
                   "(at most 32767, the Windows limit)\n")
