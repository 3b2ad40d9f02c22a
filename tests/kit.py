"""The test kit: plain helpers every test module may import (fixtures live in conftest.py).

Everything here is a REAL piece, nothing stood in: hosts come from an inventory file loaded by
the real inventory loader, the playbook is the shipped `playbooks/asr-mobility.yml` loaded by the
real loader, requests go through the real op encoding, the CLI is the real `main`. The lab host
model is the only stand-in: for a Windows box, which this machine does not have.

- the CLI: `run_cli`, `write_file`, `expected_error` (the broken-file corpora)
- one lab host's ops: `connect`, `call`, `fact`
- a fleet on the lab: `asr_playbook`, `lab_fleet`, `lab`, `run_on_lab`, `ListSink`, `FAST`
- one resource type on a lab host: `LabContext`, `plan_on`, `apply_on`, `place`, `make_host`
- the lab's WS-Man endpoint: `Wire`, `run_asr`, `OS_FACTS`
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import pytest

from pushinstall import events
from pushinstall.cli import main
from pushinstall.engine import RunOptions, RunSummary, run_fleet
from pushinstall.engine.support import Backoff
from pushinstall.inventory import load_inventory, select_hosts
from pushinstall.lab import LabHost, lab_host
from pushinstall.lab.connect import PROCESS_HOOKS
from pushinstall.lab.ssh_server import SSHLabEndpoint
from pushinstall.lab.transport import LabTransport
from pushinstall.lab.wsman.endpoint import WSManLabEndpoint
from pushinstall.model import Connection, Host, Playbook
from pushinstall.playbook import load_playbook
from pushinstall.remote import ops
from pushinstall.resources.base import Applied, Plan
from pushinstall.runner import resolve_run_secrets
from pushinstall.secret import Secret
from pushinstall.transports.base import Transport
from pushinstall.transports.psrp import PSRPTransport
from pushinstall.transports.winrm import WinRMTransport

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "playbooks" / "asr-mobility.yml"
LAB_INVENTORY = ROOT / "inventories" / "lab.yml"
FAST = Backoff(initial=0.01, maximum=0.05)
GATE = "No pending reboot"
INSTALL = "Install Mobility service"
SVAGENTS = "svagents running"
STEPS = 15
SKIPPED_STEPS = 5     # the other asr_mode's steps, the separate VM agent, the guest agent


# ---------------------------------------------------------------- the CLI


class CliResult(NamedTuple):
    """What one in-process `pushinstall` said: unpacks as (code, out, err)."""

    code: int
    out: str
    err: str

    @property
    def output(self) -> str:
        """stdout then stderr, for assertions that do not care which."""
        return self.out + self.err


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> CliResult:
    """`pushinstall ARGV` in this process; a traceback on either stream fails the test."""
    with pytest.raises(SystemExit) as done:
        main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err + out
    return CliResult(exit_code(done.value), out, err)


def exit_code(done: SystemExit) -> int:
    """The exit status the interpreter gives for `done` (None is 0, a message is 1)."""
    code = done.code
    return 0 if code is None else code if isinstance(code, int) else 1


def recap(output: str) -> dict[str, str]:
    """host -> final status, from the RECAP lines."""
    lines = output.split("\nRECAP\n", 1)[1].splitlines()
    return {line.split()[0]: line.split()[-1] for line in lines if "  ok=" in line}


def write_file(folder: Path, name: str, text: str) -> str:
    """Write `text` to folder/name; returns the path as a command line would name it."""
    path = folder / name
    path.write_text(text)
    return str(path)


def expected_error(case: Path) -> str:
    """The one error line a broken corpus file must produce: its first line says
    `# expect: :LINE:COL: message (expected)`, and the line starts with the file's path."""
    first = case.read_text().splitlines()[0]
    assert first.startswith("# expect: "), "the first line says what the error must be"
    return str(case) + first[len("# expect: "):]


# ---------------------------------------------------------------- one lab host's ops


def connect(name: str = "web01", **lab: Any) -> LabTransport:
    """An open LabTransport to lab host `name` with `lab:` vars `lab`."""
    transport = LabTransport(Host(name, vars={"lab": lab}))
    transport.open()
    return transport


def call(transport: Transport, op: str, **args: Any) -> Any:
    """One op's result; an error answer raises RemoteOpFailed."""
    return ops.result_of(transport.call(ops.request(op, **args)))


def fact(transport: Transport, **query: Any) -> Any:
    """What one `facts` query finds."""
    return call(transport, "facts", queries=[{"id": "q", **query}])["q"]


# ---------------------------------------------------------------- a fleet on the lab


class ListSink:
    """A sink that keeps every event (the engine's sink protocol)."""

    def __init__(self) -> None:
        self.events: list[events.Event] = []
        self.closed = False

    def emit(self, event: events.Event) -> None:
        """Keep the event."""
        self.events.append(event)

    def close(self) -> None:
        """Remember that the engine closed us."""
        self.closed = True

    def steps(self, host: str) -> dict[str, events.StepResult]:
        """That host's step results by step name."""
        return {e.step: e for e in self.events
                if isinstance(e, events.StepResult) and e.host == host}

    def of(self, kind: type, host: str | None = None) -> list[Any]:
        """Events of one kind (for one host)."""
        return [e for e in self.events
                if isinstance(e, kind) and (host is None or getattr(e, "host", None) == host)]


class CtrlCSink(ListSink):
    """A ListSink that presses Ctrl-C (SIGINT to this process) once, as the first event `when`
    accepts comes in: an event, not a timer, so the moment does not move with the machine's
    load (a timer that fires outside the run raises KeyboardInterrupt in the test process)."""

    def __init__(self, when: Callable[[events.Event], bool]) -> None:
        super().__init__()
        self.when = when
        self.pressed = False

    def emit(self, event: events.Event) -> None:
        """Keep the event; press Ctrl-C if it is the one."""
        super().emit(event)
        if not self.pressed and self.when(event):
            self.pressed = True
            os.kill(os.getpid(), signal.SIGINT)


def asr_playbook(tmp_path: Path, **settings: Any) -> Playbook:
    """The shipped playbook, loaded for real; `on_pending` is a var (default reboot) and
    `settings` override its settings (reboot=RebootPolicy(...), serial=[...], ...)."""
    text = SHIPPED.read_text(encoding="utf-8")
    gate = "asr_on_pending: fail"
    assert text.count(gate) == 1
    text = text.replace(gate, "asr_on_pending: '{{ on_pending }}'")
    text = text.replace("\nvars:\n", "\nvars:\n  on_pending: reboot\n", 1)
    path = tmp_path / "asr-mobility.yml"
    path.write_text(text, encoding="utf-8")
    playbook = load_playbook(str(path))
    for key, value in settings.items():
        setattr(playbook.settings, key, value)
    return playbook


def lab_fleet(tmp_path: Path, count: int, faults: dict[int, dict[str, Any]] | None = None,
              host_vars: dict[int, dict[str, Any]] | None = None,
              prefix: str = "web") -> list[Host]:
    """`count` lab hosts `web000..` from a real inventory file; `faults[i]` is host i's `lab:`
    var, `host_vars[i]` its other vars. Connection settings and secrets as in lab.yml."""
    (tmp_path / "password.txt").write_text("lab-password\n", encoding="utf-8")
    (tmp_path / "passphrase.txt").write_text("lab-passphrase\n", encoding="utf-8")
    hosts: dict[str, Any] = {}
    for index in range(count):
        entry = dict((host_vars or {}).get(index, {}))
        if faults and index in faults:
            entry["lab"] = faults[index]
        hosts[f"{prefix}{index:03d}"] = entry or None
    inventory = {"all": {
        "vars": {"transport": "lab", "lab_wire": False, "username": "LAB\\Administrator",
                 "password": {"file": "password.txt"}, "cs_endpoint": "10.0.0.115",
                 "asr_passphrase": {"file": "passphrase.txt"},
                 "asr_installer_share": "\\\\labshare\\asr"},
        "hosts": hosts}}
    path = tmp_path / "fleet.yml"
    path.write_text(json.dumps(inventory, indent=1), encoding="utf-8")   # JSON is YAML
    return select_hosts(load_inventory([str(path)]), "all")


def lab(host: Host) -> LabHost:
    """The process's lab host behind `host` (op_log, calls, generation)."""
    return lab_host(host.name, host.vars.get("lab"))


def run_on_lab(hosts: list[Host], playbook: Playbook, sink: ListSink | None = None,
               **options: Any) -> tuple[RunSummary, ListSink]:
    """Run the fleet on the in-process lab with fast retry backoff (and the lab's hooks, for
    workers); returns the summary and the events (into `sink`, a new ListSink by default)."""
    sink = sink or ListSink()
    options = {"backoff": FAST, "hooks": PROCESS_HOOKS, **options}
    summary = run_fleet(hosts, playbook, RunOptions(**options), [sink],
                        transport_factory=LabTransport)
    assert sink.closed
    return summary, sink


# ---------------------------------------------------------------- one resource type on a lab host
# Every request is checked with `ops.validate_request` first, and gather is built the way the
# engine builds it: one `batch` of one `facts` request plus the `script` probes.


def lab_link(host: LabHost) -> LabTransport:
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
        self.transport = lab_link(host)
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
    answers = ops.result_of(lab_link(host).call(ops.batch(requests)), host.name)
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


def place(host: LabHost, path: str, data: bytes) -> None:
    """Put a file on the host (parents created), outside the resource under test."""
    host.state.fs.make_dirs(path.rsplit("\\", 1)[0])
    host.import_file(path, data)


def make_host(name: str, **lab: Any) -> LabHost:
    """A lab host with `lab:` vars (faults, starting state)."""
    return lab_host(name, lab)


# ---------------------------------------------------------------- the lab's WS-Man endpoint

PASSWORD = "pw-Lab-123"
OS_FACTS = ops.request("facts", queries=[{"id": "os", "kind": "os"}])


class Wire:
    """An endpoint plus helpers to serve lab hosts and build inventory hosts that reach them."""

    def __init__(self, endpoint: WSManLabEndpoint) -> None:
        self.endpoint = endpoint
        self.client_passwords: dict[str, str] = {}  # a host's client sends another password

    def serve(self, name: str, lab: dict[str, Any] | None = None, username: str = "admin",
              password: str = PASSWORD, allow_unencrypted: bool = False) -> LabHost:
        """Serve lab host `name` (once) with these credentials; returns its model."""
        model = lab_host(name, lab)
        if not self.endpoint.serves(name):
            self.endpoint.add_host(model, username=username, password=password,
                                   allow_unencrypted=allow_unencrypted)
        return model

    def host(self, name: str, transport: str = "psrp", auth: str = "ntlm", tls: bool = False,
             password: str = PASSWORD, username: str = "admin", **settings: Any) -> Host:
        """An inventory host whose connection reaches `name` on this endpoint."""
        where = self.endpoint.address(name)
        settings.setdefault("cert_validation", str(self.endpoint.ca_file) if tls else True)
        connection = Connection(transport=transport, address=where.address,
                                port=where.https_port if tls else where.http_port, auth=auth,
                                tls=tls, username=username, password=Secret(password),
                                **settings)
        return Host(name, connection=connection)

    def opened(self, name: str, transport: str = "psrp",
               **settings: Any) -> PSRPTransport | WinRMTransport:
        """A psrp or winrm transport to served host `name` (`host`'s settings), opened."""
        made = wsman_transport(self.host(name, transport, **settings))
        made.open()
        return made

    def factory(self, transport: str, auth: str, tls: bool,
                **settings: Any) -> Callable[[Host], Transport]:
        """A transport factory for the engine: each inventory lab host served here."""
        def make(host: Host) -> Transport:
            self.serve(host.name, host.vars.get("lab"))
            password = self.client_passwords.get(host.name, PASSWORD)
            return wsman_transport(self.host(host.name, transport, auth, tls,
                                             password=password, **settings))

        return make


def wsman_transport(host: Host) -> PSRPTransport | WinRMTransport:
    """The psrp or winrm transport `host`'s connection names (not opened)."""
    return PSRPTransport(host) if host.connection.transport == "psrp" else WinRMTransport(host)


def run_asr(factory: Callable[[Host], Transport], names: list[str],
            lab: dict[str, dict[str, Any]] | None = None,
            sink: ListSink | None = None) -> tuple[RunSummary, ListSink]:
    """The README's demo: inventories/lab.yml and playbooks/asr-mobility.yml on `names`
    (events into `sink`, a new ListSink by default)."""
    inventory = load_inventory([str(LAB_INVENTORY)])
    playbook = load_playbook(str(SHIPPED))
    hosts = [inventory.hosts[name] for name in names]
    for host in hosts:
        host.vars["lab"] = {**(host.vars.get("lab") or {}), **(lab or {}).get(host.name, {})}
    resolve_run_secrets(hosts, playbook)
    sink = sink or ListSink()
    summary = run_fleet(hosts, playbook, RunOptions(backoff=FAST), [sink],
                        transport_factory=factory)
    return summary, sink


def ask(host: LabHost, op: str, **args: Any) -> Any:
    """One op on a lab host through its request line, as an agent would get it."""
    return ops.result_of(ops.decode_answer(host.handle_line(ops.invocation(
        ops.request(op, **args)))))


SSH_USER, SSH_PASSWORD = "Administrator", "Lab-Passw0rd!"


def ssh_host(endpoint: SSHLabEndpoint, name: str, password: str = SSH_PASSWORD,
             **connection: Any) -> Host:
    """A Host that reaches `name` on the lab's SSH endpoint."""
    address, port = endpoint.address(name)
    options: dict[str, Any] = {"known_hosts": str(endpoint.known_hosts)} | connection
    return Host(name, connection=Connection(
        transport="ssh", address=address, port=port, username=SSH_USER,
        password=Secret(password), **options))
