"""The push receiver loads the core from the agent's cache instead of compiling it per push.

What runs here: the stream's core text against the shim's here-string (the DLL name both
compute), mono's `Cache.StoreAssembly` storing the mono-compiled core under that name, and the
lab's receiver over real psrp/winrm, which loads a valid cached DLL and compiles when there is
none or it was tampered with. What cannot run here: receiver.ps1 itself (no Windows
PowerShell; tests/test_agent_ps1.py parses and lints it for 3.0, tests/windows/ pushes on a
real host when one is configured).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from pathlib import Path

import pytest
from agent_host import SharedHost, compile_core, require_mono
from kit import OS_FACTS, Wire

from pushinstall.lab import agent_cache
from pushinstall.remote import ops, receiver
from pushinstall.transports.psrp import PSRPTransport
from pushinstall.transports.winrm import WinRMTransport


def _here_string_content(agent: str) -> str:
    """What PowerShell puts in `$PushinstallAgentCore`: the lines between `@'` and `'@`,
    without the line break before `'@` (about_Quoting_Rules)."""
    match = re.match(r"\$PushinstallAgentCore = @'\n(.*?)\n'@\n", agent, re.S)
    assert match is not None
    return match.group(1)


def test_the_stream_carries_the_text_whose_hash_names_the_agents_dll() -> None:
    streamed, _, _ = receiver.split_stream([receiver.prefix() + receiver.header("x", 0, 0)])
    held = _here_string_content(ops.agent_source())
    assert streamed == held == ops.agent_core_held()
    assert hashlib.sha256(streamed.encode("utf-8")).hexdigest() == agent_cache.core_hash()


def test_mono_stores_the_compiled_core_under_the_name_the_receiver_looks_for(
        agent_session: SharedHost, tmp_path: Path) -> None:
    require_mono()
    dll, _ = compile_core(tmp_path, with_host=False)
    data = dll.read_bytes()
    streamed, _, _ = receiver.split_stream([receiver.prefix() + receiver.header("x", 0, 0)])
    source = hashlib.sha256(streamed.encode("utf-8")).hexdigest()
    agent = agent_session.host(tmp_path)
    folder = tmp_path / "cache"
    name = agent.command(f"CACHEDLL {folder} {source} {base64.b64encode(data).decode()}")
    # receiver.ps1: "$hash-$(& $hex $bytes).dll" of a file matching "$hash-*.dll"
    assert name == f"{source}-{hashlib.sha256(data).hexdigest()}.dll"
    assert (folder / name).read_bytes() == data


def _transport(wire: Wire, kind: str) -> PSRPTransport | WinRMTransport:
    host = wire.host("h1", transport=kind)
    transport = PSRPTransport(host) if kind == "psrp" else WinRMTransport(host)
    transport.open()
    ops.result_of(transport.call(OS_FACTS))     # the session's agent caches the core
    return transport


def _push(transport: PSRPTransport | WinRMTransport, tmp_path: Path, name: str) -> None:
    local = tmp_path / name
    local.write_bytes(os.urandom(256 * 1024))
    transport.put_file(local, f"C:\\Temp\\{name}",
                       hashlib.sha256(local.read_bytes()).hexdigest())


@pytest.mark.parametrize("kind", ["psrp", "winrm"])
def test_a_push_loads_the_cached_core_and_compiles_when_it_was_tampered_with(
        wire: Wire, kind: str, tmp_path: Path) -> None:
    model = wire.serve("h1")
    transport = _transport(wire, kind)
    try:
        _push(transport, tmp_path, "a.bin")
        _push(transport, tmp_path, "b.bin")
        assert model.receiver_compiles == 0 and model.compiles == 1
        # changed after the session loaded it: the next receiver finds no valid DLL
        (dll,) = agent_cache.assemblies(model.state.fs, agent_cache.core_hash())
        model.import_file(dll, agent_cache.ASSEMBLY_HEADER + b"changed after the check\n")
        assert not agent_cache.cached_core(model.state.fs)
        _push(transport, tmp_path, "c.bin")
    finally:
        transport.close()
    assert model.receiver_compiles == 1      # compiled, as every push did before the cache
    assert model.op_log.count("file_end") == 3


def test_the_receiver_loads_the_cache_by_hash_and_keeps_compiling_as_its_fallback() -> None:
    script = receiver.receiver_script()
    load = script.index("[Reflection.Assembly]::Load($bytes)")
    compile_ = script.index("Add-Type -TypeDefinition $source")
    assert script.index('"$hash-$(& $hex $bytes).dll"') < load < compile_
    assert "SHA256CryptoServiceProvider" in script      # SHA256Managed fails under FIPS
    assert "if (-not ('Pushinstall.Agent.Core' -as [type]))" in script[load:compile_]
