"""A tiny ApplyContext over the real lab model, so resource types are tested end to end.

No Windows here: `pushinstall.lab.LabHost` stands for the target (it answers the same op
contract as agent.ps1), reached through the real `LabTransport` (each request becomes the
PowerShell line, the answer line is decoded) and the real push loop. Every request is checked
with `ops.validate_request` first, and gather / verify are built the way the engine builds
them: one `batch` of one `facts` request plus the `script` probes.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pushinstall.lab import lab_host
from pushinstall.lab.host import LabHost
from pushinstall.lab.transport import LabTransport
from pushinstall.model import Host
from pushinstall.remote import ops
from pushinstall.resources.base import Applied, Plan


def transport(host: LabHost) -> LabTransport:
    """An open LabTransport to `host` (the process shares one LabHost per name)."""
    # the same lab vars again: lab_host() refreshes a shared host's settings from them
    same = Host(host.name, vars={"lab": dataclasses.asdict(host.lab)})
    link = LabTransport(same, state_dir=host.path.parent.parent)
    assert link.lab is host
    link.open()
    return link


class LabContext:
    """`ApplyContext` for one lab host, over the real lab transport, schema-checked."""

    def __init__(self, host: LabHost) -> None:
        self.host = host
        self.host_name = host.name
        self.transport = transport(host)
        self.sent: list[str] = []
        self.logs: list[str] = []

    def call(self, op: str, **args: Any) -> Any:
        """Send one op; an error answer raises RemoteOpFailed (as the engine's context)."""
        req = ops.request(op, **args)
        ops.validate_request(req)
        self.sent.append(op)
        return ops.result_of(self.transport.call(req), self.host_name)

    def put_file(self, local: Path, remote: str, sha256: str) -> dict[str, Any]:
        """The transport's push: file_begin / file_chunk / file_end."""
        self.sent.append("put_file")
        return self.transport.put_file(Path(local), remote, sha256)

    def facts(self, queries: list[dict[str, Any]]) -> dict[str, Any]:
        """A fresh `facts` call."""
        result: dict[str, Any] = self.call("facts", queries=queries)
        return result

    def log(self, message: str) -> None:
        """Keep debug lines for the test to read."""
        self.logs.append(message)


def gather(module: ModuleType, args: dict[str, Any], host: LabHost) -> dict[str, Any]:
    """What the step's probes find on `host`, in ONE batch (as the engine gathers)."""
    probes = module.probes(args)
    queries = [{**p.query, "id": p.id} for p in probes if p.query is not None]
    scripts = [p for p in probes if p.request is not None]
    requests = [ops.request("facts", queries=queries)] + [p.request for p in scripts]
    for req in requests:
        ops.validate_request(req)
    answers = ops.result_of(transport(host).call(ops.batch(requests)), host.name)
    found: dict[str, Any] = dict(ops.result_of(answers[0], host.name))
    for probe, answer in zip(scripts, answers[1:], strict=True):
        found[probe.id] = answer.get("result") if answer.get("ok") else {
            "error": answer.get("error")}
    return found


def plan_on(module: ModuleType, args: dict[str, Any], host: LabHost) -> Plan:
    """Gather on the lab host, then plan."""
    plan: Plan = module.plan(args, gather(module, args, host))
    return plan


def apply_on(module: ModuleType, args: dict[str, Any], host: LabHost) -> tuple[Applied,
                                                                              LabContext]:
    """Apply through a LabContext; returns what apply said and the context (ops sent)."""
    ctx = LabContext(host)
    applied: Applied = module.apply(args, ctx)
    return applied, ctx


@pytest.fixture
def host() -> LabHost:
    """A fresh lab host (Server 2019, nothing installed) in this test's state dir."""
    return lab_host("web01")


def place(host: LabHost, path: str, data: bytes) -> None:
    """Put a file on the host (parents created), outside the resource under test."""
    host.state.fs.make_dirs(path.rsplit("\\", 1)[0])
    host.import_file(path, data)


def make_host(name: str, **lab: Any) -> LabHost:
    """A lab host with `lab:` vars (faults, starting state)."""
    return lab_host(name, lab)


def test_context_refuses_a_request_the_schema_refuses(host: LabHost) -> None:
    ctx = LabContext(host)
    with pytest.raises(ValueError, match="bogus"):
        ctx.call("ensure_directory", path="C:\\x", bogus=1)
    assert host.op_log == []


def test_context_pushes_a_file_in_chunks(host: LabHost, tmp_path: Path) -> None:
    local = tmp_path / "blob.bin"
    data = bytes(range(256)) * 9000  # more than two 1 MiB chunks
    local.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    result = LabContext(host).put_file(local, "C:\\Temp\\blob.bin", digest)
    assert result["changed"] is True
    assert host.file_content("C:\\Temp\\blob.bin") == data
    assert host.op_log.count("file_chunk") == 3
