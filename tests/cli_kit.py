"""The real CLI against a small lab inventory (the operator-loop tests).

The inventory holds one host of each outcome; every secret in it is a literal that
`SECRETS` lists, so a test can grep every output for them.

`cli` runs `pushinstall` in this process by default: the same `main(argv)` the console script
calls, with the command's environment and working directory, and its file descriptors 1 and 2
caught (so what forked workers or a C library write is caught too). A fresh interpreter would
spend ~1 s of CPU importing and compiling before the command even starts, and the suite runs
some hundreds of commands. `process=True` runs a real subprocess where the process is the point
(every byte a secret could leak through, in test_no_secret_leaks.py).
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Iterator
from pathlib import Path

from kit import exit_code

from pushinstall.cli import main
from pushinstall.lab.pools import stop_all

REPO = Path(__file__).resolve().parent.parent
PLAYBOOK = REPO / "playbooks" / "asr-mobility.yml"
PASSWORD = "Lab-Pw-7b1e!"
PASSPHRASE = "cs-Passphrase-7b1e"   # each host's simulated configuration server expects it
SECRETS = (PASSWORD, PASSPHRASE)


def write_inventory(folder: Path, hosts: dict[str, str] | None = None) -> Path:
    """An inventory of lab hosts (`name: "lab vars, flow style without braces"`), secrets in
    files beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "password.txt").write_text(PASSWORD + "\n")
    (folder / "passphrase.txt").write_text(PASSPHRASE + "\n")
    hosts = hosts if hosts is not None else {
        "h-ok": "", "h-fail": "installer_exit_code: 14", "h-down": "unreachable: true"}
    lines = [
        "all:",
        "  vars:",
        "    transport: lab",
        "    username: LAB\\Administrator",
        "    password: {file: password.txt}",
        "    cs_endpoint: 10.0.0.115",
        "    asr_passphrase: {file: passphrase.txt}",
        "    asr_installer_share: \\\\labshare\\asr",
        "  children:",
        "    fleet:",
        "      hosts:",
    ]
    lines += [f"        {name}:\n          lab: {{cs_passphrase: {PASSPHRASE}"
              f"{', ' + lab if lab else ''}}}" for name, lab in hosts.items()]
    path = folder / "inventory.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


# Retries wait 10 ms at first, not 1 s: the h-down host's connect retries would cost each run
# ~3.5 s of backoff and prove nothing more (an `env` of the test's own can say otherwise).
FAST_RETRIES = {"PUSHINSTALL_RETRY_DELAY": "0.01"}


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 240, process: bool = False) -> subprocess.CompletedProcess[str]:
    """`pushinstall ARGS` (the state dir of the calling test): its exit code and output."""
    full_env = {**os.environ, **FAST_RETRIES, **(env or {})}
    if process:
        return subprocess.run([sys.executable, "-m", "pushinstall", *args],
                              capture_output=True, text=True, env=full_env, cwd=cwd or REPO,
                              timeout=timeout, check=False)
    with _environment(full_env, cwd or REPO), _caught() as streams:
        try:
            main(list(args))
            code = 0
        except SystemExit as done:
            code = exit_code(done)
        except BaseException:                     # as the interpreter would print it
            traceback.print_exc()
            code = 1
        finally:
            stop_all()      # the lab endpoints this command started, as its exit would
    out, err = streams
    return subprocess.CompletedProcess(["pushinstall", *args], code, out.getvalue(),
                                       err.getvalue())


@contextlib.contextmanager
def _environment(wanted: dict[str, str], cwd: Path) -> Iterator[None]:
    """This process's environment is `wanted` and its working directory `cwd`, for a while."""
    saved, saved_cwd = dict(os.environ), os.getcwd()
    os.environ.clear()
    os.environ.update(wanted)
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _caught() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """Descriptors 1 and 2 (and sys.stdout/stderr over them) into two files; their text in
    the two StringIOs once the block ends."""
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdout, sys.stderr
    for stream in saved:
        stream.flush()
    with tempfile.TemporaryFile() as out_file, tempfile.TemporaryFile() as err_file:
        kept = [os.dup(1), os.dup(2)]
        os.dup2(out_file.fileno(), 1)
        os.dup2(err_file.fileno(), 2)
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False)   # noqa: SIM115
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace",  # noqa: SIM115
                          closefd=False, buffering=1)
        try:
            yield out, err
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            sys.stdout, sys.stderr = saved
            for number, fd in enumerate(kept, start=1):
                os.dup2(fd, number)
                os.close(fd)
            for caught, file in ((out, out_file), (err, err_file)):
                file.seek(0)
                caught.write(file.read().decode("utf-8", "backslashreplace"))
