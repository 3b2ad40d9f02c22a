"""The shipped playbook, loaded and templated for real, run by the real engine against lab
hosts from inventories/lab.yml: it converges, a second run changes nothing, and a check after
it is compliant. (The lab transport stands in for Windows; nothing else is simulated.)"""

from __future__ import annotations

from kit import FAST, LAB_INVENTORY, SHIPPED, ListSink

from pushinstall import events
from pushinstall.engine import RunOptions, run_fleet
from pushinstall.inventory import load_inventory, select_hosts
from pushinstall.lab.transport import LabTransport
from pushinstall.model import Status
from pushinstall.playbook import load_playbook


def test_asr_playbook_converges_on_lab_hosts_then_is_idempotent() -> None:
    inventory = load_inventory([str(LAB_INVENTORY)])
    playbook = load_playbook(str(SHIPPED))
    # a fresh host, one with a restart pending, one with the previous release installed
    hosts = select_hosts(inventory, playbook.hosts, "lab-web01,lab-app02,lab-app03")
    sink = ListSink()
    summary = run_fleet(hosts, playbook, RunOptions(mode="run", backoff=FAST), [sink],
                        transport_factory=LabTransport)
    assert {name: o.status for name, o in summary.hosts.items()} == {
        "lab-web01": Status.CHANGED, "lab-app02": Status.CHANGED, "lab-app03": Status.CHANGED}
    assert summary.exit_code == 0
    assert "lab-passphrase" not in repr(sink.events)
    assert len([e for e in sink.events if isinstance(e, events.RebootEvent)]) == 1

    summary = run_fleet(hosts, playbook, RunOptions(mode="run", backoff=FAST), [ListSink()],
                        transport_factory=LabTransport)
    assert all(o.status == Status.OK and o.counts == {Status.OK: 10, Status.SKIPPED: 5}
               for o in summary.hosts.values())
    summary = run_fleet(hosts, playbook, RunOptions(mode="check", backoff=FAST), [ListSink()],
                        transport_factory=LabTransport)
    assert all(o.status == Status.COMPLIANT for o in summary.hosts.values())
