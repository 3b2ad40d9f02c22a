"""The README's command blocks run as written, from a copy of the checkout's shipped files.

The first `sh` block of "## Use" runs against the lab, every command of it. The fleet block
names hosts under corp.example, which a test must never contact: its `validate` and
`inventory` commands run (they touch no host), `run` runs with `--list-hosts` added, and
`install` is only parsed by the CLI.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
from cli_kit import REPO, SECRETS, cli

from pushinstall.cli import cli as root

README = (REPO / "README.md").read_text()


def blocks(section: str) -> list[list[str]]:
    """The commands of each ```sh block under `## section`, continuation lines joined."""
    body = README.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    out = []
    for block in re.findall(r"```sh\n(.*?)```", body, re.S):
        joined = block.replace("\\\n", " ")
        out.append([line.strip() for line in joined.splitlines()
                    if line.strip() and not line.strip().startswith("#")])
    return out


def workdir(tmp_path: Path) -> Path:
    for name in ("inventories", "playbooks"):
        (tmp_path / name).symlink_to(REPO / name)
    return tmp_path


def test_the_lab_block_runs_as_written(tmp_path: Path) -> None:
    cwd = workdir(tmp_path)
    commands = blocks("Use")[0]
    assert len(commands) >= 10
    outputs = []
    for line in commands:
        argv = shlex.split(line)
        assert argv[0] == "pushinstall", line
        result = cli(*argv[1:], cwd=cwd)
        outputs.append(result.stdout + result.stderr)
        # 2 is what check and drift say about drifted lab hosts: documented, not a failure
        assert result.returncode in (0, 2), f"{line}\n{result.stdout}{result.stderr}"
        assert "Traceback" not in result.stderr, line
    assert (cwd / "reports" / "latest.html").is_file() and (cwd / "asr.jsonl").is_file()
    everything = "".join(outputs) + "".join(p.read_text() for p in (cwd / "reports").iterdir())
    assert not any(secret in everything for secret in SECRETS)


def test_the_fleet_block_as_far_as_no_host_is_contacted(tmp_path: Path) -> None:
    cwd = workdir(tmp_path)
    env: dict[str, str] = {}
    for line in blocks("Use")[1]:
        argv = shlex.split(line)
        if argv[0] == "export":
            env.update(dict(word.split("=", 1) for word in argv[1:]))
            continue
        assert argv[0] == "pushinstall", line
        if argv[1] in ("validate", "inventory"):
            result = cli(*argv[1:], cwd=cwd, env=env)
            assert result.returncode == 0, f"{line}\n{result.stderr}"
        elif argv[1] == "run":
            result = cli(*argv[1:], "--list-hosts", cwd=cwd, env=env)
            assert result.returncode == 0 and "hosts (" in result.stdout, result.stderr
        else:
            command = root.commands[argv[1]]
            with command.make_context(argv[1], argv[2:]) as context:   # parses, runs nothing
                assert context.params
    assert isinstance(root, click.Group)


def test_the_crontab_line_is_a_valid_check_command() -> None:
    body = README.split("```crontab\n", 1)[1].split("```", 1)[0]
    line = next(row for row in body.splitlines() if "pushinstall check" in row)
    argv = shlex.split(line.split(">>", 1)[0])[5:]
    assert argv[:2] == ["pushinstall", "check"]
    with root.commands["check"].make_context("check", argv[2:]) as context:
        assert context.params["remediate"] and context.params["report_dir"]
