"""The real resource types under the real engine, against lab hosts over the lab transport.

The shipped ASR playbook — gate on a pending reboot, copy the bundle from the share, extract
it, install, register with the passphrase in a secret file, check the registration and the
services — converges in one run, changes nothing in a second (one gather call), and `check`
finds it compliant. No Windows box: the lab host model stands for the targets. Arguments are
templates the playbook layer renders per host; the passphrase stays a Secret.
"""

from __future__ import annotations

from pathlib import Path

from kit import SKIPPED_STEPS, STEPS, asr_playbook, lab, lab_fleet, run_on_lab

from pushinstall import events
from pushinstall.model import Status

UA = "{275197FC-14FD-4560-A5EB-38217F80CBD1}"
PASSFILE = "C:\\ProgramData\\pushinstall\\passphrase.txt"
INSTALL = "Install Mobility service"
REGISTER = "Register with the configuration server"
REGISTERED = "Registered with the configuration server"


def test_asr_sequence_converges_then_is_idempotent(tmp_path: Path) -> None:
    hosts = lab_fleet(tmp_path, 1, {0: {"pending_reboot": True, "reboot_seconds": 0.2}})
    summary, sink = run_on_lab(hosts, asr_playbook(tmp_path))
    outcome = summary.hosts["web000"]
    assert outcome.status == Status.CHANGED, (outcome.message, sink.steps("web000"))
    steps = sink.steps("web000")
    assert steps["No pending reboot"].diff == "pending reboot: yes (pending_file_rename) -> no"
    assert steps[INSTALL].diff == f"package '{UA}': absent -> installed 9.62.7172.1 or later"
    assert steps[REGISTERED].status == Status.OK
    assert len([e for e in sink.events if isinstance(e, events.RebootEvent)]) == 1

    lab(hosts[0]).op_log.clear()
    summary, sink = run_on_lab(hosts, asr_playbook(tmp_path))
    assert summary.hosts["web000"].status == Status.OK
    assert summary.hosts["web000"].counts == {Status.OK: STEPS - SKIPPED_STEPS,
                                              Status.SKIPPED: SKIPPED_STEPS}
    assert lab(hosts[0]).op_log == ["batch"]

    summary, _ = run_on_lab(hosts, asr_playbook(tmp_path), mode="check")
    assert summary.hosts["web000"].status == Status.COMPLIANT


def test_a_wrong_passphrase_fails_the_host_with_the_asr_message(tmp_path: Path) -> None:
    hosts = lab_fleet(tmp_path, 1)
    (tmp_path / "passphrase.txt").write_text("not-the-passphrase\n", encoding="utf-8")
    summary, sink = run_on_lab(hosts, asr_playbook(tmp_path))
    assert summary.hosts["web000"].status == Status.FAILED
    step = sink.steps("web000")[REGISTER]
    assert step.status == Status.FAILED
    # the configurator's own message, then the tail of its log
    assert step.message.splitlines()[:3] == [
        "exit 14: invalid passphrase or configuration server endpoint",
        "last 2 lines of C:\\ProgramData\\ASRSetupLogs\\ASRUnifiedAgentConfigurator.log:",
        f"Invalid passphrase: {PASSFILE}"]
    assert "not-the-passphrase" not in repr(sink.events)
    assert not lab(hosts[0]).state.fs.is_file(PASSFILE)
    assert REGISTERED not in sink.steps("web000")  # a failed step ends the host
