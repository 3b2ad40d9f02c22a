"""Stand-ins for the engine's tests: a tiny simulated host and four tiny resource types.

STAND-IN, on purpose and temporary: when these tests were written, the real simulated host
(`pushinstall/lab/`, `transports/lab.py`), the resource runtime (`resources/<type>.py`) and the
playbook templating (`playbook.render_step`, `host_variables`) had not landed. The engine is
tested against their documented interfaces through these stand-ins; every request still goes
through the real op encoding (`ops.invocation` -> decode -> answer line -> `ops.decode_answer`).
Swap to `LabTransport` and `RESOURCE_TYPES` once they exist.
"""

from __future__ import annotations

import functools
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest
from jinja2 import StrictUndefined, Template, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

import pushinstall.playbook
import pushinstall.resources
from pushinstall.errors import AuthenticationFailed, InputError, Unreachable
from pushinstall.inventory import Host
from pushinstall.playbook import Playbook, Settings, Step
from pushinstall.remote import ops
from pushinstall.resources.base import CHANGE, FAIL, OK, Applied, Plan, Probe

UA_PRODUCT = "{275197FC-14FD-4560-A5EB-38217F80CBD1}"


class StubHost:
    """A simulated host: services, products, pending reboot, boot time, an op log."""

    def __init__(self, name: str, faults: dict[str, Any] | None = None) -> None:
        self.name = name
        self.faults = faults or {}
        self.services: dict[str, str] = {}
        self.products: dict[str, str] = {}
        self.pending = bool(self.faults.get("pending_reboot"))
        self.boot = 1
        self.dark_until = 0.0
        self.opens = 0
        self.op_log: list[str] = []
        self.lock = threading.Lock()

    def fact(self, query: dict[str, Any]) -> dict[str, Any]:
        kind = query["kind"]
        if kind == "os":
            return {"hostname": self.name, "last_boot_time": f"2026-01-01T00:00:{self.boot:02d}Z"}
        if kind == "service":
            status = self.services.get(query["name"])
            return {"exists": status is not None, "name": query["name"], "status": status}
        if kind == "product":
            version = self.products.get(query["product_id"])
            return {"installed": version is not None, "version": version}
        if kind == "pending_reboot":
            return {"pending": self.pending, "signals": {"pending_file_rename": self.pending}}
        return {"error": {"type": "InvalidArgument", "message": f"kind {kind}"}}

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op, args = req["op"], req["args"]
        if op == "batch":
            return ops.ok([self.handle(r) for r in args["requests"]])
        if op == "facts":
            return ops.ok({q["id"]: self.fact(q) for q in args["queries"]})
        if op == "set_service":
            if args["name"] not in self.services:
                return ops.error("NotFound", f"service {args['name']}")
            stays_down = args["name"] in self.faults.get("service_stops_after_start", [])
            changed = self.services[args["name"]] != "Running"
            self.services[args["name"]] = "Stopped" if stays_down else "Running"
            return ops.ok({"changed": changed, "status": "Running"})
        if op == "run_process":
            code = int(self.faults.get("installer_exit_code", 0))
            if code in (0, 3010):
                self.products[UA_PRODUCT] = "9.62"
                self.services["svagents"] = "Running"
                self.pending = self.pending or code == 3010
            return ops.ok({"exit_code": code, "timed_out": False, "stdout_tail": "",
                           "stderr_tail": "", "command_line": args["path"]})
        if op == "reboot":
            before = self.fact({"kind": "os"})["last_boot_time"]
            self.dark_until = time.monotonic() + float(self.faults.get("reboot_seconds", 0.05))
            self.boot += 1
            self.pending = False
            for name in self.services:
                if name in self.faults.get("service_stops_after_start", []):
                    self.services[name] = "Stopped"
            return ops.ok({"boot_time_before": before})
        return ops.error("UnknownOp", op)

    def handle_line(self, line: str) -> str:
        encoded = line.split("'")[1]
        req = ops.decode_request(encoded)
        with self.lock:
            self.op_log.append(req["op"])
            answer = self.handle(req)
        return "noise before\n" + ops.encode_answer(answer) + "\n"


class StubTransport:
    """The Transport protocol over a StubHost, with connection faults and latency."""

    def __init__(self, host: StubHost, latency: float = 0.0) -> None:
        self.host = host
        self.latency = latency

    def _reachable(self) -> None:
        if self.host.faults.get("unreachable") or time.monotonic() < self.host.dark_until:
            raise Unreachable("connection refused", host=self.host.name)

    def open(self) -> None:
        with self.host.lock:
            self.host.opens += 1
            flaky = self.host.opens <= int(self.host.faults.get("refuse_first_opens", 0))
        if flaky:
            raise Unreachable("connection reset", host=self.host.name)
        self._reachable()
        if self.host.faults.get("bad_credentials"):
            raise AuthenticationFailed("401", host=self.host.name, hint="check the password")

    def call(self, request: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        time.sleep(self.latency)
        self._reachable()
        output = self.host.handle_line(ops.invocation(request))
        if request["op"] == self.host.faults.get("drop_after_op"):
            raise Unreachable("connection reset while reading the answer", host=self.host.name)
        return ops.decode_answer(output, host=self.host.name)

    def put_file(self, local: Any, remote: str, sha256: str) -> dict[str, Any]:
        raise NotImplementedError("no resource stand-in pushes files")

    def close(self) -> None:
        pass


class StubLab:
    """One StubHost per inventory host (faults from the host's `lab:` var)."""

    def __init__(self, latency: float = 0.0) -> None:
        self.hosts: dict[str, StubHost] = {}
        self.latency = latency
        self.lock = threading.Lock()

    def host(self, host: Host) -> StubHost:
        with self.lock:
            if host.name not in self.hosts:
                self.hosts[host.name] = StubHost(host.name, host.vars.get("lab"))
            return self.hosts[host.name]

    def factory(self, host: Host) -> StubTransport:
        return StubTransport(self.host(host), self.latency)


def _service() -> SimpleNamespace:
    def probes(args: dict[str, Any]) -> list[Probe]:
        return [Probe("svc", {"kind": "service", "name": args["name"]})]

    def plan(args: dict[str, Any], found: dict[str, Any]) -> Plan:
        fact = found["svc"]
        status = fact["status"] if fact.get("exists") else "absent"
        if status == "Running":
            return Plan(OK)
        return Plan(CHANGE, diff=f"service '{args['name']}': {status} -> Running")

    def apply(args: dict[str, Any], ctx: Any) -> Applied:
        result = ctx.call("set_service", name=args["name"], state="running")
        return Applied(changed=result["changed"])

    return SimpleNamespace(probes=probes, plan=plan, apply=apply)


def _package() -> SimpleNamespace:
    def probes(args: dict[str, Any]) -> list[Probe]:
        return [Probe("product", {"kind": "product", "product_id": args["product_id"]})]

    def plan(args: dict[str, Any], found: dict[str, Any]) -> Plan:
        if found["product"].get("installed"):
            return Plan(OK)
        return Plan(CHANGE, diff=f"product {args['product_id']}: absent -> installed")

    def apply(args: dict[str, Any], ctx: Any) -> Applied:
        result = ctx.call("run_process", path=args["path"], arguments=args.get("arguments", []))
        code = result["exit_code"]
        if code == 3010:
            return Applied(reboot=True, message="exit 3010: reboot required")
        if code:
            return Applied(failed=True, message=f"exit {code}: invalid passphrase or CS endpoint"
                           if code == 14 else f"exit {code}")
        return Applied()

    return SimpleNamespace(probes=probes, plan=plan, apply=apply)


def _pending_reboot() -> SimpleNamespace:
    def probes(args: dict[str, Any]) -> list[Probe]:
        return [Probe("pending", {"kind": "pending_reboot"})]

    def plan(args: dict[str, Any], found: dict[str, Any]) -> Plan:
        if not found["pending"]["pending"]:
            return Plan(OK)
        policy = args.get("on_pending", "fail")
        if policy == "warn":
            return Plan(OK, reason="a reboot is pending (warn)")
        status = CHANGE if policy == "reboot" else FAIL
        return Plan(status, diff="pending reboot: yes -> no", reason="a reboot is pending")

    def apply(args: dict[str, Any], ctx: Any) -> Applied:
        return Applied(changed=True, reboot=True)

    return SimpleNamespace(probes=probes, plan=plan, apply=apply)


STUB_TYPES = {"service": _service(), "package": _package(), "pending_reboot": _pending_reboot()}


_JINJA = SandboxedEnvironment(undefined=StrictUndefined)


@functools.lru_cache(maxsize=1024)
def _template(text: str) -> Template:
    return _JINJA.from_string(text)


def _render_step(step: Step, variables: dict[str, Any]) -> dict[str, Any]:
    try:
        return {k: _template(v).render(**variables) if isinstance(v, str) and "{{" in v else v
                for k, v in step.args.items()}
    except UndefinedError as error:
        raise InputError(f"step '{step.name}': {error}") from None


def _host_variables(host: Host, playbook: Playbook, extra: dict[str, Any]) -> dict[str, Any]:
    return {**playbook.vars, **host.vars, **extra, "inventory_hostname": host.name}


@pytest.fixture
def stubs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Route the engine's resource registry and templating to the stand-ins."""
    monkeypatch.setattr(pushinstall.resources, "RESOURCE_TYPES", STUB_TYPES, raising=False)
    monkeypatch.setattr(pushinstall.playbook, "render_step", _render_step, raising=False)
    monkeypatch.setattr(pushinstall.playbook, "host_variables", _host_variables, raising=False)


def asr_playbook(**settings: Any) -> Playbook:
    """The shape of the ASR playbook in miniature: gate, install, service."""
    return Playbook(
        name="asr", hosts="all", settings=Settings(**settings),
        steps=[
            Step("No pending reboot", "pending_reboot", {"on_pending": "{{ on_pending }}"}),
            Step("Install Mobility service", "package",
                 {"path": "C:\\Temp\\ASR\\UnifiedAgent.exe", "product_id": UA_PRODUCT}),
            Step("Service svagents", "service", {"name": "svagents"}),
        ],
        vars={"on_pending": "reboot"},
    )


def hosts(count: int, faults: dict[int, dict[str, Any]] | None = None,
          prefix: str = "web") -> list[Host]:
    """`count` hosts; `faults` maps an index to that host's `lab:` var."""
    faults = faults or {}
    return [Host(f"{prefix}{i:03d}", vars={"lab": faults.get(i, {})}) for i in range(count)]


def test_stub_host_answers_through_the_op_encoding() -> None:
    lab = StubLab()
    transport = lab.factory(Host("h"))
    transport.open()
    answer = transport.call(ops.batch([ops.request("facts", queries=[
        {"id": "os", "kind": "os"}, {"id": "s", "kind": "service", "name": "svagents"}])]))
    facts = ops.result_of(ops.result_of(answer)[0])
    assert facts["s"] == {"exists": False, "name": "svagents", "status": None}
    assert lab.hosts["h"].op_log == ["batch"]
