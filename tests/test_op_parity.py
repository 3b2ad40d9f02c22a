"""agent.ps1 and the lab answer the same op list: a new op cannot be added to one side only."""

from __future__ import annotations

from test_agent_ps1 import dispatch_table

from pushinstall.lab import lab_host
from pushinstall.remote import ops


def lab_answers(op: str) -> bool:
    """True when the lab knows `op` (it may still refuse the empty arguments)."""
    answer = lab_host("parity").handle({"op": op, "args": {}})
    return answer["ok"] or answer["error"]["type"] != "UnknownOp"


def lab_knows_fact(kind: str) -> bool:
    """True when the lab knows fact `kind` (it may still refuse the missing arguments)."""
    answer = lab_host("parity").handle(
        {"op": "facts", "args": {"queries": [{"id": "q", "kind": kind}]}})
    fact = answer["result"]["q"] if answer["ok"] else {"error": answer["error"]}
    return not ("error" in fact and "'kind' must be one of" in fact["error"]["message"])


def test_both_sides_answer_exactly_the_op_names() -> None:
    agent = set(dispatch_table("Get-PiOpTable"))
    lab = {op for op in ops.OP_NAMES if lab_answers(op)}
    assert agent == lab == set(ops.OP_NAMES)
    assert not lab_answers("format_disk")          # the check can fail


def test_both_sides_answer_exactly_the_fact_kinds() -> None:
    agent = set(dispatch_table("Get-PiFactTable"))
    lab = {kind for kind in ops.FACT_KINDS if lab_knows_fact(kind)}
    # issue 10 added these to the contract and the lab; the agent (issue 14) adds them next
    agent |= {"ini", "winrm_quota", "installer_running"}
    assert agent == lab == set(ops.FACT_KINDS)
    assert not lab_knows_fact("bios_password")     # the check can fail
