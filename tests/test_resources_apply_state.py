"""service, registry, pending_reboot and reboot applied to the real lab model."""

from __future__ import annotations

import pytest
from kit import apply_on, make_host, plan_on

from pushinstall.errors import RemoteOpFailed
from pushinstall.lab.host import LabHost
from pushinstall.model import Decision
from pushinstall.resources import pending_reboot, reboot, registry, service

STATUS_KEY = "HKLM:\\SOFTWARE\\Wow6432Node\\InMage Systems\\Installed Products\\5"
REGISTERED = {"key": STATUS_KEY, "name": "AgentConfigurationStatus", "value": "Succeeded",
              "mode": "assert"}


def test_service_is_started_with_its_start_mode(host: LabHost) -> None:
    args = {"name": "wuauserv", "state": "running", "start_mode": "auto"}
    plan = plan_on(service, args, host)
    assert plan.diff.splitlines() == ["service 'wuauserv': Stopped -> Running",
                                      "service 'wuauserv' start mode: Manual -> Automatic"]
    applied, _ = apply_on(service, args, host)
    assert applied.changed and applied.message == "Running, Automatic"
    assert plan_on(service, args, host).status == Decision.OK
    stop = {"name": "wuauserv", "state": "stopped"}
    assert plan_on(service, stop, host).diff == "service 'wuauserv': Running -> Stopped"
    apply_on(service, stop, host)
    assert plan_on(service, stop, host).status == Decision.OK


def test_service_absent_ok_and_absent(host: LabHost) -> None:
    assert plan_on(service, {"name": "svagents", "ensure": "absent-ok"}, host).status == Decision.OK
    missing = plan_on(service, {"name": "svagents"}, host)
    assert (missing.status == Decision.FAIL
            and missing.reason == "service 'svagents' is not installed")


def test_service_that_will_not_start_fails_with_the_status() -> None:
    lab_host = make_host("web02", registered_to="10.0.0.115",
                         services_that_wont_start=["svagents"])
    lab_host.state.services["svagents"]["status"] = "Stopped"
    with pytest.raises(RemoteOpFailed, match="svagents did not reach Running") as raised:
        apply_on(service, {"name": "svagents"}, lab_host)
    assert raised.value.error_type == "ServiceFailed"


def test_registry_assert_registered_with_the_cs() -> None:
    assert plan_on(registry, REGISTERED, make_host("web03", registered_to="10.0.0.115")
                   ).status == Decision.OK
    failed = make_host("web04", installed_version="9.62.0.0")
    failed.state.registry.set(STATUS_KEY, "AgentConfigurationStatus", "Failed", "String")
    plan = plan_on(registry, REGISTERED, failed)
    assert plan.status == Decision.FAIL
    assert plan.reason == (f"registry {STATUS_KEY}\\AgentConfigurationStatus: expected "
                           "'Succeeded', found 'Failed'")
    absent = plan_on(registry, REGISTERED, make_host("web05"))
    assert absent.status == Decision.FAIL and "found (absent)" in absent.reason


def test_registry_set_writes_the_typed_value_in_its_view(host: LabHost) -> None:
    args = {"key": "HKLM:\\SOFTWARE\\Contoso\\Agent", "name": "Level", "value": "3",
            "type": "DWord", "view": "32"}
    plan = plan_on(registry, args, host)
    assert plan.diff == ("registry HKLM:\\SOFTWARE\\Contoso\\Agent\\Level (32-bit view): "
                         "(absent) -> 3")
    applied, _ = apply_on(registry, args, host)
    assert applied.changed
    assert host.calls[-1]["args"]["value"] == 3
    assert plan_on(registry, args, host).status == Decision.OK
    assert plan_on(registry, {**args, "view": "64"}, host).status == Decision.CHANGE
    multi = {"key": "HKLM:\\SOFTWARE\\Contoso\\Agent", "name": "Servers",
             "value": ["a", "b"], "type": "MultiString"}
    apply_on(registry, multi, host)
    assert plan_on(registry, multi, host).status == Decision.OK


def test_pending_reboot_on_the_lab() -> None:
    pending = make_host("web06", pending_reboot=["windows_update"])
    plan = plan_on(pending_reboot, {"on_pending": "reboot"}, pending)
    assert (plan.status, plan.diff) == (Decision.CHANGE,
                                        "pending reboot: yes (windows_update) -> no")
    applied, ctx = apply_on(pending_reboot, {"on_pending": "reboot"}, pending)
    # the engine sends `reboot` and waits for the new boot time; apply only asks for it
    assert applied.reboot and applied.changed and ctx.sent == []
    assert plan_on(pending_reboot, {"on_pending": "fail"}, make_host("web07")).status == Decision.OK


def test_reboot_asks_the_engine_for_a_restart(host: LabHost) -> None:
    applied, ctx = apply_on(reboot, {"reason": "kernel patch", "timeout": 600}, host)
    assert (applied.changed, applied.reboot, applied.message) == (True, True, "kernel patch")
    assert ctx.sent == []
    assert plan_on(reboot, {}, host).status == Decision.CHANGE
