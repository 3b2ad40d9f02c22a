"""Agent modules (issue 12): the ops that change a machine are C# the target compiles only when
a session first needs one (remote/modules.py), so a compliance check never carries them.

The C# side runs under mono (`tests/agent_host`): the module is really compiled by CodeDom
against the core's assembly, loaded from bytes, cached under the hash of the core and its
source, and its ops registered. Mocked: the Windows machine — over the wire a `LabHost`
answers, and the lab's endpoints hold a session to the same rule (a module's op before the
module is an error).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from agent_host import AgentHost
from kit import Wire

from pushinstall.lab import received
from pushinstall.remote import modules, ops
from pushinstall.transports.psrp import PSRPTransport
from pushinstall.transports.winrm import WinRMTransport

REBOOT = ops.request("reboot", delay_s=5)


def _dlls(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.dll"))


def test_a_change_op_waits_for_its_module_which_the_core_compiles_and_registers(
        tmp_path: Path) -> None:
    agent = AgentHost(tmp_path / "host", load_modules=False, cache=tmp_path / "cache")
    try:
        before = agent.answer(REBOOT)
        assert before["ok"] is False and "op module" in before["error"]["message"]
        assert agent.answer(modules.load_request("changes")) == ops.ok({"name": "changes"})
        assert agent.answer(REBOOT)["ok"] is True        # registered: the module answers
        assert agent.answer(modules.load_request("changes"))["ok"]     # again: harmless
        (dll,) = _dlls(tmp_path / "cache")
        assert dll.name.endswith(f"-{hashlib.sha256(dll.read_bytes()).hexdigest()}.dll")
        assert ["ProtectDirectory", str(tmp_path / "cache")] in agent.command("CALLS")
    finally:
        agent.close()


def test_a_later_session_loads_the_cached_module_and_a_tampered_one_is_built_again(
        tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = AgentHost(tmp_path / "one", cache=cache)
    first.close()
    (dll,) = _dlls(cache)
    stored = dll.read_bytes()
    later = AgentHost(tmp_path / "two", load_modules=False, cache=cache)
    try:
        assert later.answer(modules.load_request("changes"))["ok"]
        assert later.command("CALLS") == []      # nothing stored: loaded from the cache
        assert later.answer(REBOOT)["ok"] is True
    finally:
        later.close()
    dll.write_bytes(stored[:-1] + bytes([stored[-1] ^ 1]))        # no longer its name's hash
    again = AgentHost(tmp_path / "three", load_modules=False, cache=cache)
    try:
        assert again.answer(modules.load_request("changes"))["ok"]
        assert ["ProtectDirectory", str(cache)] in again.command("CALLS")     # built, stored
    finally:
        again.close()
    (fresh,) = _dlls(cache)
    assert fresh.name.endswith(f"-{hashlib.sha256(fresh.read_bytes()).hexdigest()}.dll")


def test_a_module_that_does_not_compile_is_an_error_its_ops_repeat(tmp_path: Path) -> None:
    agent = AgentHost(tmp_path / "host", load_modules=False, cache=tmp_path / "cache")
    try:
        broken = ops.request("module", name="changes", source="namespace X { class }")
        answer = agent.answer(broken)
        assert answer["ok"] is False and "did not load" in answer["error"]["message"]
        assert "did not load" in agent.answer(REBOOT)["error"]["message"]
    finally:
        agent.close()


# ---------------------------------------------------------------- the controller's side


def test_with_modules_sends_the_module_ahead_in_one_batch_and_answers_as_asked() -> None:
    loaded: set[str] = set()
    facts = ops.request("facts", queries=[])
    assert modules.with_modules(facts, loaded)[0] is facts
    wrapped, unwrap = modules.with_modules(REBOOT, loaded)
    assert wrapped == ops.batch([modules.load_request("changes"), REBOOT])
    assert unwrap(ops.ok([ops.ok({"name": "changes"}), ops.ok({"x": 1})])) == ops.ok({"x": 1})
    assert loaded == {"changes"}
    assert modules.with_modules(REBOOT, loaded)[0] is REBOOT
    both = ops.batch([facts, REBOOT])
    wrapped, unwrap = modules.with_modules(both, set())
    assert wrapped["args"]["requests"][1:] == [facts, REBOOT]
    assert unwrap(ops.ok([ops.ok({}), ops.ok({"a": 1}), ops.ok({"b": 2})])) == \
        ops.ok([ops.ok({"a": 1}), ops.ok({"b": 2})])


def test_a_module_that_did_not_load_is_not_remembered() -> None:
    loaded: set[str] = set()
    _, unwrap = modules.with_modules(REBOOT, loaded)
    failed = ops.error("Exception", "module changes did not load: x")
    assert unwrap(ops.ok([failed, ops.error("Exception", "op module")]))["ok"] is False
    assert loaded == set()


# ---------------------------------------------------------------- over the wire


def _sent_modules(texts: list[str]) -> int:
    return sum(1 for text in texts if _is_module_load(text))


def _is_module_load(text: str) -> bool:
    try:
        request = ops.decode_request(text.split("'")[1] if "'" in text else text)
    except (ValueError, IndexError):
        return False
    inner: list[Any] = (request.get("args", {}).get("requests") or []) \
        if request.get("op") == "batch" else [request]
    return any(isinstance(r, dict) and r.get("op") == "module" for r in inner)


def test_each_session_sends_the_module_once_with_its_first_change(wire: Wire) -> None:
    """Over psrp and winrm: the gather goes without the module, the first change op with it,
    later ones alone; a new session sends it again."""
    wire.serve("h1")
    texts = received.start()
    try:
        for transport in (PSRPTransport(wire.host("h1")),
                          WinRMTransport(wire.host("h1", "winrm"))):
            texts.clear()
            transport.open()
            assert transport.call(ops.batch([ops.request("facts", queries=[])]))["ok"]
            assert _sent_modules(texts) == 0
            made = ops.request("ensure_directory", path="C:\\Temp\\m")
            assert transport.call(made)["ok"]      # in the core: no module
            quiet = ops.request("set_registry", key="HKLM:\\SOFTWARE\\Pi",
                                name=type(transport).__name__, value=1, type="DWord")
            assert transport.call(quiet) == ops.ok({"changed": True})
            assert _sent_modules(texts) == 1
            assert transport.call(quiet) == ops.ok({"changed": False})
            assert _sent_modules(texts) == 1
            transport.close()
    finally:
        received.stop()


def test_the_lab_refuses_a_change_op_whose_module_the_session_lacks(wire: Wire) -> None:
    """What a target whose controller forgot the module answers: the lab holds sessions to it."""
    wire.serve("h1")
    transport = PSRPTransport(wire.host("h1"))
    transport.open()
    transport.call(ops.batch([ops.request("facts", queries=[])]))
    transport._modules.add("changes")        # the controller believes it went: it did not
    answer = transport.call(REBOOT)
    transport.close()
    assert answer["ok"] is False and "has not loaded" in answer["error"]["message"]
