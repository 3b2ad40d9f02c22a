"""JUnit XML: one testsuite per host, one testcase per step, every count computed.

Failed and drifted steps are `<failure>`; an unreachable host, a host that failed outside any
step (interrupted, host deadline, internal error) and a run that did not finish are `<error>`,
so a CI job that reads the file is never green after a Ctrl-C.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from pushinstall.model import UNMET_STATUSES, Status
from pushinstall.report.collect import HostRecord, RunRecord

ERROR_STATUSES = {Status.UNREACHABLE, Status.INTERRUPTED}


def _host_suite(host: HostRecord, interrupted: bool) -> ET.Element:
    suite = ET.Element("testsuite", name=host.name, time=f"{host.duration:.3f}")
    for step in host.steps:
        case = ET.SubElement(suite, "testcase", classname=host.name, name=step.step,
                             time=f"{step.duration:.3f}")
        if step.status in UNMET_STATUSES:
            node = ET.SubElement(case, "failure", message=step.message or step.status,
                                 type=step.status)
            node.text = "\n".join(filter(None, [step.diff, step.message, *step.log_tail]))
        elif step.status == Status.SKIPPED:
            ET.SubElement(case, "skipped", message=step.message or "skipped")
    step_failed = any(s.status in UNMET_STATUSES for s in host.steps)
    unfinished = not host.status or (interrupted and host.message.startswith(
        ("interrupted", "not started")))
    host_error = host.status in ERROR_STATUSES or unfinished or (
        host.status == Status.FAILED and not step_failed)
    if host_error:
        # the host's own line: the connection, or the run around its steps
        name = "connect" if host.status == Status.UNREACHABLE else "host"
        case = ET.SubElement(suite, "testcase", classname=host.name, name=name)
        kind = "interrupted" if unfinished or interrupted else (host.status or "interrupted")
        ET.SubElement(case, "error", message=host.message or kind, type=kind).text = \
            host.message or kind
    elif not host.steps:
        ET.SubElement(suite, "testcase", classname=host.name, name="connect")
    if host.warnings:   # JUnit readers show a suite's system-err
        ET.SubElement(suite, "system-err").text = "\n".join(f"WARNING: {w}" for w in host.warnings)
    _count(suite)
    return suite


def _count(suite: ET.Element) -> None:
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    for tag, attribute in (("failure", "failures"), ("error", "errors"),
                           ("skipped", "skipped")):
        suite.set(attribute, str(sum(1 for c in cases if c.find(tag) is not None)))


def render_junit(record: RunRecord) -> str:
    """The run as JUnit XML (totals on `<testsuites>` too)."""
    interrupted = record.finished is None or record.finished.interrupted
    suites = ET.Element("testsuites", name=f"pushinstall {record.mode}: {record.playbook}")
    for host in record.hosts.values():
        suites.append(_host_suite(host, interrupted))
    if interrupted:
        suite = ET.SubElement(suites, "testsuite", name="pushinstall")
        case = ET.SubElement(suite, "testcase", classname="pushinstall", name="run completed")
        ET.SubElement(case, "error", message="the run was interrupted before it finished",
                      type="interrupted")
        _count(suite)
    for attribute in ("tests", "failures", "errors", "skipped"):
        suites.set(attribute, str(sum(int(s.get(attribute, "0")) for s in suites)))
    if record.finished:
        suites.set("time", f"{record.finished.duration:.3f}")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, "unicode") + "\n"
