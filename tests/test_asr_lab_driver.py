"""The lab's InDskFlt driver, as the installer meets it: an uninstall removes the driver's
service key at once and its file at the next restart; until that restart a new install answers
62, while a pending file rename or Windows Update restart alone does not stop the installer."""

from __future__ import annotations

from typing import Any

from pushinstall.lab import catalog
from pushinstall.lab.products import DRIVER_FILE, UA_PRODUCT_ID
from pushinstall.lab.transport import LabTransport
from pushinstall.model import Host
from pushinstall.remote import ops

LOCATION = "C:\\Program Files (x86)\\Microsoft Azure Site Recovery"


def _run(transport: LabTransport, op: str, **args: Any) -> Any:
    return ops.result_of(transport.call(ops.request(op, **args)))


def _install(transport: LabTransport) -> int:
    result = _run(transport, "run_process", path="C:\\Temp\\x\\UnifiedAgent.exe", arguments=[
        "/Role", "MS", "/InstallLocation", LOCATION, "/Platform", "VmWare", "/Silent"])
    return int(result["exit_code"])


def test_an_unrebooted_uninstall_makes_the_next_install_answer_62() -> None:
    transport = LabTransport(Host("drv", vars={"lab": {
        "pending_reboot": ["pending_file_rename", "windows_update"], "reboot_seconds": 0}}))
    transport.open()
    _run(transport, "download", source=catalog.share_path(catalog.ASR_BUNDLE),
         destination="C:\\Temp\\x\\b.exe", run_as="system")
    _run(transport, "run_process", path="C:\\Temp\\x\\b.exe", arguments=["/q", "/x:C:\\Temp\\x"])
    assert _install(transport) == 0                      # pending signals do not stop it
    state = transport.lab.state
    assert state.fs.is_file(DRIVER_FILE)
    removed = _run(transport, "run_process", path="msiexec.exe",
                   arguments=["/qn", "/x", UA_PRODUCT_ID])
    assert removed["exit_code"] == 3010
    assert state.find_product(UA_PRODUCT_ID) is None and state.fs.is_file(DRIVER_FILE)
    assert _install(transport) == 62
    log = transport.lab.file_content("C:\\ProgramData\\ASRSetupLogs\\"
                                     "ASRUnifiedAgentInstaller.log")
    assert b"Exit code: 62" in log
    _run(transport, "reboot")
    assert not state.fs.is_file(DRIVER_FILE)
    assert _install(transport) == 0
