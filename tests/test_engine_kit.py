"""Helpers for the engine and fleet tests: the REAL pieces, nothing stood in.

Hosts come from an inventory file written to tmp_path and loaded by the real inventory loader;
the playbook is the shipped `playbooks/asr-mobility.yml`, loaded by the real loader (with the
gate's `on_pending` made a variable, so one fleet can hold every policy); hosts are lab hosts
(`pushinstall.lab`) reached through `lab.transport.LabTransport` (the real op encoding, in
process, no socket). The lab host model is the only stand-in: for a Windows box, which this
machine does not have.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pushinstall import events
from pushinstall.engine import RunOptions, RunSummary, run_fleet
from pushinstall.engine.support import Backoff
from pushinstall.inventory import load_inventory, select_hosts
from pushinstall.lab import LabHost, lab_host
from pushinstall.lab.connect import PROCESS_HOOKS
from pushinstall.lab.transport import LabTransport
from pushinstall.model import Host, Playbook
from pushinstall.playbook import load_playbook

ROOT = Path(__file__).parent.parent
SHIPPED = ROOT / "playbooks" / "asr-mobility.yml"
FAST = Backoff(initial=0.01, maximum=0.05)
GATE = "No pending reboot"
INSTALL = "Install Mobility service"
SVAGENTS = "svagents running"
STEPS = 15
SKIPPED_STEPS = 5     # the other asr_mode's steps, the separate VM agent, the guest agent


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


def run(hosts: list[Host], playbook: Playbook, **options: Any) -> tuple[RunSummary, ListSink]:
    """Run the fleet on the lab with fast retry backoff; returns the summary and the events."""
    sink = ListSink()
    options = {"backoff": FAST, "hooks": PROCESS_HOOKS, **options}
    summary = run_fleet(hosts, playbook, RunOptions(**options), [sink],
                        transport_factory=LabTransport)
    assert sink.closed
    return summary, sink
