"""The real resource types under the real engine, against lab hosts over the lab transport.

The ASR sequence in miniature — gate on a pending reboot, copy the bundle from the share,
extract it, install and register with the passphrase in a secret file, check the service and
the registration — converges in one run, changes nothing in a second (one gather call), and
`check` finds it compliant. No Windows box: the lab host model stands for the targets.
Arguments are templates the playbook layer renders per host; the passphrase stays a Secret.
"""

from __future__ import annotations

from test_engine import ListSink

from pushinstall import events
from pushinstall.engine import RunOptions, RunSummary, run_fleet
from pushinstall.engine.support import Backoff
from pushinstall.lab import catalog
from pushinstall.lab.transport import LabTransport
from pushinstall.model import Host, Playbook, RebootPolicy, Settings, Status, Step
from pushinstall.secret import Secret

FAST = Backoff(initial=0.01, maximum=0.05)
UA = "{275197FC-14FD-4560-A5EB-38217F80CBD1}"
ASR = "C:\\Temp\\ASR"
PASSFILE = f"{ASR}\\passphrase.txt"
STATUS_KEY = "HKLM:\\SOFTWARE\\Wow6432Node\\InMage Systems\\Installed Products\\5"


def asr_playbook(passphrase: str = "lab-passphrase") -> Playbook:
    bundle = f"{ASR}\\{catalog.ASR_LEGACY_BUNDLE}"  # one-step: the legacy generation
    return Playbook(name="asr-mobility", hosts="all", settings=Settings(
        reboot=RebootPolicy(timeout=20)), steps=[
        Step("No pending reboot", "pending_reboot", {"on_pending": "reboot"}),
        Step("Staging directory", "directory", {"path": ASR}),
        Step("Copy bundle", "file", {"dest": bundle,
                                     "src": catalog.share_path(catalog.ASR_LEGACY_BUNDLE),
                                     "sha256": catalog.sha256_of(catalog.ASR_LEGACY_BUNDLE),
                                     "copy_as": "system"}),
        Step("Extract UnifiedAgent", "command", {
            "path": bundle, "arguments": ["/q", f"/x:{ASR}\\Extracted"],
            "creates": f"{ASR}\\Extracted\\UnifiedAgent.exe"}),
        Step("Install Mobility service", "package", {
            "path": f"{ASR}\\Extracted\\UnifiedAgent.exe",
            "arguments": ["/Role", "Agent", "/Silent", "/CSEndpoint", "{{ cs_endpoint }}",
                          "/PassphraseFilePath", PASSFILE],
            "product_id": UA,
            "secret_file": {"path": PASSFILE, "content": "{{ asr_passphrase }}"},
            "messages": "asr_unified_agent"}),
        Step("svagents running", "service", {"name": "svagents", "start_mode": "auto"}),
        Step("Registered with the CS", "registry", {
            "key": STATUS_KEY, "name": "AgentConfigurationStatus", "value": "Succeeded",
            "mode": "assert"}),
    ], vars={"cs_endpoint": "10.0.0.115", "asr_passphrase": Secret(passphrase)})


def run(hosts: list[Host], playbook: Playbook, mode: str = "run",
        ) -> tuple[RunSummary, ListSink]:
    sink = ListSink()
    summary = run_fleet(hosts, playbook, RunOptions(mode=mode, backoff=FAST), [sink],
                        transport_factory=LabTransport)
    return summary, sink


def test_asr_sequence_converges_then_is_idempotent() -> None:
    hosts = [Host("web01", vars={"lab": {"pending_reboot": True, "reboot_seconds": 0.2}})]
    summary, sink = run(hosts, asr_playbook())
    outcome = summary.hosts["web01"]
    assert outcome.status == Status.CHANGED, (outcome.message, sink.steps("web01"))
    steps = sink.steps("web01")
    assert steps["No pending reboot"].diff == "pending reboot: yes (pending_file_rename) -> no"
    assert steps["Install Mobility service"].diff == f"package '{UA}': absent -> installed"
    assert steps["Registered with the CS"].status == Status.OK
    assert len([e for e in sink.events if isinstance(e, events.RebootEvent)]) == 1

    transport = LabTransport(hosts[0])
    transport.lab.op_log.clear()
    summary, sink = run(hosts, asr_playbook())
    assert summary.hosts["web01"].status == Status.OK
    assert summary.hosts["web01"].counts == {Status.OK: 7}
    assert transport.lab.op_log == ["batch"]

    summary, _ = run(hosts, asr_playbook(), mode="check")
    assert summary.hosts["web01"].status == Status.COMPLIANT


def test_a_wrong_passphrase_fails_the_host_with_the_asr_message() -> None:
    hosts = [Host("web02", vars={"lab": {}})]
    summary, sink = run(hosts, asr_playbook(passphrase="not-the-passphrase"))
    assert summary.hosts["web02"].status == Status.FAILED
    step = sink.steps("web02")["Install Mobility service"]
    assert step.status == Status.FAILED
    assert step.message == "exit 14: invalid passphrase or configuration server endpoint"
    assert "not-the-passphrase" not in repr(sink.events)
    lab = LabTransport(hosts[0]).lab
    assert not lab.state.fs.is_file(PASSFILE)
    assert "Registered with the CS" not in sink.steps("web02")  # a failed step ends the host
