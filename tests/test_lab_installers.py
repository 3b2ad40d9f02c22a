"""The simulated installers: UnifiedAgent.exe in its three generations, the configurator,
msiexec with the Azure VM agent, their exit codes and the faults that force them."""

from __future__ import annotations

from typing import Any

import pytest
from kit import call, connect, fact

from pushinstall.lab import catalog
from pushinstall.lab.products import INMAGE_KEY, UA_NAME, UA_PRODUCT_ID, VM_AGENT_PRODUCT_ID
from pushinstall.lab.transport import LabTransport

LOCATION = "C:\\Program Files (x86)\\Microsoft Azure Site Recovery"
CONFIGURATOR = f"{LOCATION}\\agent\\UnifiedAgentConfigurator.exe"
PASSPHRASE = "C:\\ProgramData\\pushinstall\\passphrase.txt"
ASR01 = "asr01"


def connect_asr(**lab: Any) -> LabTransport:
    """The ASR host; these tests are about the installers, not the double hop: the share
    lets them read."""
    lab.setdefault("share_requires_credential", False)
    return connect(ASR01, **lab)


def stage(transport: LabTransport, passphrase: str = "lab-passphrase",
          bundle: str = catalog.ASR_BUNDLE) -> str:
    """Download and extract the bundle, write the passphrase; returns UnifiedAgent.exe's path."""
    call(transport, "download", source=catalog.share_path(bundle),
        destination="C:\\Temp\\asr\\bundle.exe", sha256=catalog.sha256_of(bundle))
    extracted = call(transport, "run_process", path="C:\\Temp\\asr\\bundle.exe",
                    arguments=["/q", "/x:C:\\Temp\\asr\\Extracted"])
    assert extracted["exit_code"] == 0
    call(transport, "write_secret", path=PASSPHRASE, content=passphrase)
    return "C:\\Temp\\asr\\Extracted\\UnifiedAgent.exe"


def install_ms(transport: LabTransport, setup: str, *extra: str) -> dict[str, Any]:
    return call(transport, "run_process", path=setup, arguments=[
        "/Role", "MS", "/InstallLocation", LOCATION, "/Platform", "VmWare", "/Silent", *extra])


def configure(transport: LabTransport, endpoint: str = "10.0.0.115") -> int:
    result = call(transport, "run_process", path=CONFIGURATOR,
                 arguments=["/CSEndPoint", endpoint, "/PassphraseFilePath", PASSPHRASE])
    return int(result["exit_code"])


def registered(transport: LabTransport) -> bool:
    status = fact(transport, kind="registry", key=INMAGE_KEY, name="AgentConfigurationStatus")
    return bool(status["value"] == "Succeeded")


def test_classic_install_then_configurator_registers() -> None:
    transport = connect_asr()
    setup = stage(transport)
    result = install_ms(transport, setup, "/CSType", "CSLegacy")
    assert result["exit_code"] == 0 and result["timed_out"] is False
    assert result["command_line"].startswith('"C:\\Temp\\asr\\Extracted\\UnifiedAgent.exe" '
                                             '/Role MS /InstallLocation "C:\\Program Files')
    product = fact(transport, kind="product", name=UA_NAME)
    assert product == {"installed": True, "product_id": UA_PRODUCT_ID, "name": UA_NAME,
                       "version": catalog.ASR_VERSION, "install_location": LOCATION + "\\",
                       "view": "32"}
    assert fact(transport, kind="file", path=CONFIGURATOR)["exists"]
    assert not registered(transport)
    assert configure(transport) == 0
    assert registered(transport)
    for name in ("svagents", "InMage Scout Application Service", "frsvc"):
        service = fact(transport, kind="service", name=name)
        assert (service["status"], service["start_mode"]) == ("Running", "AutomaticDelayed")
    vss = fact(transport, kind="service", name="Azure Site Recovery VSS Provider")
    assert vss["exists"] and vss["start_mode"] == "Manual"
    for name, value in (("Version", catalog.ASR_VERSION), ("InstallDirectory", LOCATION),
                        ("PostInstallActions", "Succeeded")):
        assert fact(transport, kind="registry", key=INMAGE_KEY, name=name)["value"] == value
    # the same key through the 32-bit view, as a 32-bit process sees it
    assert fact(transport, kind="registry", key="HKLM:\\SOFTWARE\\InMage Systems\\Installed "
                "Products\\5", name="Version", view="32")["value"] == catalog.ASR_VERSION


def test_legacy_one_step_install_and_rerun_changes_nothing() -> None:
    transport = connect_asr()
    setup = stage(transport, bundle=catalog.ASR_LEGACY_BUNDLE)
    arguments = ["/Role", "Agent", "/InstallLocation", LOCATION, "/CSEndpoint", "10.0.0.115",
                 "/PassphraseFilePath", PASSPHRASE]
    assert call(transport, "run_process", path=setup, arguments=arguments)["exit_code"] == 0
    assert registered(transport)
    state = transport.lab.state

    def machine() -> tuple[Any, ...]:
        files = {k: (e["size"], e["blob"], e.get("inline"), e["modified"])
                 for k, e in state.fs.files.items()
                 if "asrsetuplogs" not in k}
        return files, repr(state.registry.keys), repr(state.services)

    before = machine()
    again = call(transport, "run_process", path=setup, arguments=arguments)
    assert again["exit_code"] == 0 and "already installed" in " ".join(again["stdout_tail"])
    assert machine() == before  # only the installer log grew
    assert fact(transport, kind="product", product_id=UA_PRODUCT_ID)["version"] == \
        catalog.ASR_LEGACY_VERSION


def test_modernized_csprime_install_with_source_config() -> None:
    transport = connect_asr()
    setup = stage(transport)
    assert install_ms(transport, setup, "/CSType", "CSPrime")["exit_code"] == 0
    call(transport, "download", source=catalog.url(catalog.CONFIG_ZIP),
        destination="C:\\Temp\\cfg.zip")
    call(transport, "expand_archive", path="C:\\Temp\\cfg.zip", destination="C:\\Temp\\cfg")
    result = call(transport, "run_process", path=CONFIGURATOR, arguments=[
        "/SourceConfigFilePath", "C:\\Temp\\cfg\\config.json", "/CSType", "CSPrime",
        "/CredentialLessDiscovery", "true"])
    assert result["exit_code"] == 0 and registered(transport)
    bad = call(transport, "run_process", path=CONFIGURATOR, arguments=[
        "/SourceConfigFilePath", "C:\\Temp\\cfg\\README.txt", "/CSType", "CSPrime"])
    assert bad["exit_code"] == 19


@pytest.mark.parametrize(("arguments", "code"), [
    (["/Role", "Nope", "/Silent"], 2),
    (["/Role", "MS", "/Bogus", "x"], 2),
    (["/Role", "MS", "/InstallLocation"], 2),
    (["/Role", "Agent", "/InstallLocation", LOCATION], 2),
    (["/role", "ms", "/platform", "vmware", "/silent", "/cstype", "csprime"], 0),
])
def test_unified_agent_argument_errors(arguments: list[str], code: int) -> None:
    transport = connect_asr()
    setup = stage(transport)
    assert call(transport, "run_process", path=setup, arguments=arguments)["exit_code"] == code


@pytest.mark.parametrize(("lab", "code"), [
    ({"install_running": True}, 41),
    ({"os": "2008r2"}, 42),
    ({"disk_free_bytes": 512 * 1024**2}, 99),
    ({"installer_exit_code": 1}, 1),
])
def test_installer_refusals_leave_nothing_installed(lab: dict[str, Any], code: int) -> None:
    transport = connect_asr(**lab)
    setup = stage(transport)
    result = install_ms(transport, setup)
    assert result["exit_code"] == code and result["stderr_tail"]
    assert fact(transport, kind="product", product_id=UA_PRODUCT_ID)["installed"] is False
    log = transport.lab.file_content("C:\\ProgramData\\ASRSetupLogs\\"
                                     "ASRUnifiedAgentInstaller.log")
    assert f"Exit code: {code}".encode() in log


@pytest.mark.parametrize("code", [3010, 1641, 98, 97])
def test_reboot_exit_codes_install_and_leave_a_reboot_pending(code: int) -> None:
    transport = connect_asr(installer_exit_code=code)
    assert install_ms(transport, stage(transport))["exit_code"] == code
    assert fact(transport, kind="product", product_id=UA_PRODUCT_ID)["installed"]
    assert fact(transport, kind="pending_reboot")["pending"] is True


def test_registration_failures() -> None:
    transport = connect_asr(cs_port_closed=True)
    setup = stage(transport, passphrase="not-the-passphrase")
    assert install_ms(transport, setup)["exit_code"] == 0
    assert configure(transport) == 14  # wrong passphrase
    call(transport, "write_secret", path=PASSPHRASE, content="\ufefflab-passphrase\r\n")
    assert configure(transport, endpoint="not a host!") == 14
    assert configure(transport) == 17  # port 443 closed
    status = fact(transport, kind="registry", key=INMAGE_KEY, name="AgentConfigurationStatus")
    assert status["value"] == "Failed"
    transport.lab.update_vars({})
    assert configure(transport, endpoint="10.0.0.99") == 17  # nobody there
    assert configure(transport) == 0


def test_registered_to_another_cs_answers_13() -> None:
    transport = connect_asr(registered_to="10.9.9.9")
    assert fact(transport, kind="service", name="svagents")["status"] == "Running"
    stage(transport)
    assert configure(transport) == 13
    assert configure(transport, endpoint="10.9.9.9") == 17  # that CS is not in this lab


def test_already_installed_older_version_is_upgraded_and_newer_refused() -> None:
    transport = connect_asr(installed_version=catalog.ASR_PREVIOUS_VERSION)
    assert fact(transport, kind="product", product_id=UA_PRODUCT_ID)["version"] == \
        catalog.ASR_PREVIOUS_VERSION
    assert install_ms(transport, stage(transport))["exit_code"] == 0
    assert fact(transport, kind="product", product_id=UA_PRODUCT_ID)["version"] == \
        catalog.ASR_VERSION
    older = stage(transport, bundle=catalog.ASR_PREVIOUS_BUNDLE)
    assert install_ms(transport, older)["exit_code"] == 15  # downgrade refused


def test_configurator_forced_exit_code() -> None:
    transport = connect_asr(configurator_exit_code=17)
    install_ms(transport, stage(transport))
    assert configure(transport) == 17 and not registered(transport)


def test_msiexec_installs_the_vm_agent() -> None:
    transport = connect_asr()
    call(transport, "download", source=catalog.url(catalog.VM_AGENT_MSI),
        destination="C:\\Temp\\WindowsAzureVmAgent.msi")
    result = call(transport, "run_process", path="msiexec.exe", arguments=[
        "/i", "C:\\Temp\\WindowsAzureVmAgent.msi", "/q", "/l", "C:\\Temp\\vmagent.log"])
    assert result["exit_code"] == 0
    product = fact(transport, kind="product", product_id=VM_AGENT_PRODUCT_ID)
    assert product["name"] == f"Windows Azure VM Agent - {catalog.VM_AGENT_VERSION}"
    assert product["view"] == "64"
    for name in ("WindowsAzureGuestAgent", "RdAgent"):
        assert fact(transport, kind="service", name=name)["status"] == "Running"
    assert b"completed successfully" in transport.lab.file_content("C:\\Temp\\vmagent.log")
    removed = call(transport, "run_process", path="C:\\Windows\\System32\\msiexec.exe",
                  arguments=["/x", VM_AGENT_PRODUCT_ID, "/qn"])
    assert removed["exit_code"] == 0
    assert fact(transport, kind="service", name="RdAgent")["exists"] is False


@pytest.mark.parametrize(("lab", "arguments", "code"), [
    ({}, ["/i", "C:\\Temp\\missing.msi", "/q"], 1619),
    ({}, ["/i", "C:\\Windows\\System32\\cmd.exe", "/q"], 1620),
    ({}, ["/frobnicate", "/q"], 1639),
    ({"install_running": True}, ["/i", "C:\\Temp\\a.msi", "/q"], 1618),
    ({"msi_exit_code": 1603}, ["/i", "C:\\Temp\\a.msi", "/q"], 1603),
    ({}, ["/x", UA_PRODUCT_ID, "/q"], 1605),
])
def test_msiexec_failures(lab: dict[str, Any], arguments: list[str], code: int) -> None:
    transport = connect_asr(**lab)
    call(transport, "download", source=catalog.share_path(catalog.VM_AGENT_MSI),
        destination="C:\\Temp\\a.msi")
    assert call(transport, "run_process", path="msiexec", arguments=arguments)["exit_code"] == code
    assert fact(transport, kind="product", product_id=VM_AGENT_PRODUCT_ID)["installed"] is False


def test_msiexec_without_quiet_hangs_on_an_invisible_dialog() -> None:
    transport = connect_asr()
    result = call(transport, "run_process", path="msiexec.exe",
                 arguments=["/i", "C:\\Temp\\a.msi"], timeout_s=1)
    assert result["timed_out"] is True


def test_reboot_restarts_services_with_their_faults() -> None:
    transport = connect_asr(installed_version=catalog.ASR_VERSION, reboot_seconds=0.0,
                        service_stops_after_start=["svagents"])
    call(transport, "reboot")
    assert fact(transport, kind="service", name="svagents")["status"] == "Stopped"
    assert fact(transport, kind="service", name="InMage Scout Application Service")[
        "status"] == "Running"
    assert fact(transport, kind="service", name="wuauserv")["status"] == "Stopped"
