"""The shared resource helpers: values, diffs, probe failures, exit-code mapping."""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from pushinstall.model import Decision
from pushinstall.resources import common
from pushinstall.secret import Secret


def test_shown_masks_secrets_and_quotes_strings() -> None:
    assert common.shown(Secret("hunter22")) == "********"
    assert common.shown("Succeeded") == "'Succeeded'"
    assert common.shown(["a", 1]) == "['a', 1]"
    assert common.shown(None) == "(absent)"
    assert common.shown(True) == "true"


def test_reveal_only_unwraps_for_op_arguments() -> None:
    nested = {"a": [Secret("x1y2")], "b": "plain"}
    assert common.reveal(nested) == {"a": ["x1y2"], "b": "plain"}
    assert isinstance(nested["a"][0], Secret)  # the caller's value is left alone


@pytest.mark.parametrize(("value", "kind", "expected"), [
    ("1", "DWord", 1), ("0x10", "DWord", 16), (True, "DWord", 1), (2**40, "QWord", 2**40),
    ("x", "MultiString", ["x"]), (("a", "b"), "MultiString", ["a", "b"]),
    (5, "String", "5"),
])
def test_registry_value_forms(value: Any, kind: str, expected: Any) -> None:
    assert common.registry_value(value, kind) == expected


def test_registry_value_refuses_what_cannot_be_that_type() -> None:
    with pytest.raises(ValueError, match="out of range"):
        common.registry_value(2**32, "DWord")
    with pytest.raises(ValueError):
        common.registry_value("many", "QWord")


@pytest.mark.parametrize(("found", "wanted", "same"), [
    ("Succeeded", "Succeeded", True), ("succeeded", "Succeeded", False), (1, "1", True),
    (1, 1, True), (1, "one", False), (["a", "b"], ["a", "b"], True), (["a"], "a", True),
    (None, "x", False), ("s3cret", Secret("s3cret"), True),
])
def test_same_value(found: Any, wanted: Any, same: bool) -> None:
    assert common.same_value(found, wanted) is same


def test_probe_failure_names_the_missing_answer() -> None:
    plan = common.probe_failure({"svc": None}, "service 'x'")
    assert plan is not None and plan.status == Decision.FAIL and "no answer" in plan.reason
    assert common.probe_failure({"svc": {"exists": False}}) is None


def test_local_sha256_is_cached_until_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"one")
    assert common.local_sha256(path) == hashlib.sha256(b"one").hexdigest()
    path.write_bytes(b"two!")  # another size: another cache key
    assert common.local_sha256(path) == hashlib.sha256(b"two!").hexdigest()


def outcome(code: int | None, args: dict[str, Any] | None = None, timed_out: bool = False,
            stderr: list[str] | None = None) -> Any:
    result = {"exit_code": code, "timed_out": timed_out, "duration_s": 0.1,
              "stdout_tail": [], "stderr_tail": stderr or [], "command_line": "x"}
    return common._outcome(result, {"path": "x", **(args or {})},
                           common.PACKAGE_RETURN_CODES)


def test_exit_codes_map_through_return_codes() -> None:
    assert not outcome(0).failed and not outcome(0).reboot
    assert outcome(3010).reboot and outcome(1641).reboot
    assert outcome(1603, stderr=["Fatal error during installation."]).message == (
        "exit 1603: Fatal error during installation.")
    assert outcome(7, {"return_codes": {"7": "reboot"}}).reboot  # keys may arrive as text
    assert outcome(0, {"return_codes": {0: "failed"}}).failed
    assert outcome(None).message == "the exit code could not be read"
    assert outcome(1, {"messages": {1: "a newer version is installed"}}).message == (
        "exit 1: a newer version is installed")


def test_built_in_message_tables_are_used_by_name() -> None:
    asr = {"messages": "asr_unified_agent"}
    assert outcome(14, asr).message == (
        "exit 14: invalid passphrase or configuration server endpoint")
    assert outcome(3010, asr).message == "exit 3010: success; a restart is required"
    assert outcome(3010).message == "exit 3010: a restart is required"
    assert outcome(1618, {"messages": "msiexec"}).message == (
        "exit 1618: another installation is in progress")
    assert outcome(123456, asr).message == "exit 123456"


def test_local_sha256_hashes_once_for_hosts_planning_at_once(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             ) -> None:
    path = tmp_path / "installer.exe"
    path.write_bytes(b"x" * 4096)
    opened: list[str] = []
    real_open = open

    def counting_open(name: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(name))
        time.sleep(0.05)  # a slow disk: without the lock every thread would hash it
        return real_open(name, *args, **kwargs)

    # only common's own `open` (a module global shadows the builtin), not every open in the
    # process: pytest, logging and the other threads keep the real one
    monkeypatch.setattr(common, "open", counting_open, raising=False)
    with ThreadPoolExecutor(max_workers=16) as pool:
        digests = set(pool.map(lambda _: common.local_sha256(path), range(64)))
    assert digests == {hashlib.sha256(b"x" * 4096).hexdigest()}
    assert opened.count(str(path)) == 1
