"""Exit-code messages of the installers the shipped playbook runs, for failed-step messages."""

from __future__ import annotations

# UnifiedAgent.exe and UnifiedAgentConfigurator.exe (ASR Mobility service): the agent's
# UASetupReturnValues (SetupFramework/SetupHelper.cs) and Microsoft Learn's "Troubleshoot
# Mobility service installation"; docs/lab.md cites each.
ASR_UNIFIED_AGENT: dict[int, str] = {
    0: "success",
    1: "installation failed (see the install log)",
    2: "invalid arguments (an unknown switch, or a missing or wrong value)",
    3: "invalid argument values (a CS endpoint or passphrase in Azure mode, a bad IP)",
    13: "already registered with another configuration server: unregister it first",
    14: "invalid passphrase or configuration server endpoint",
    15: "a newer version is installed: downgrade is not supported",
    17: "registration with the configuration server failed",
    19: "invalid source configuration file",
    41: "another installation is running",
    42: "unsupported operating system",
    62: "a filter driver of an earlier install remains without its service (an uninstall "
        "not yet followed by its restart): restart the server, then install",
    97: "failed with errors, or a driver needs a mandatory restart (see "
        "ASRUnifiedAgentInstaller.log and its errors json)",
    98: "succeeded with warnings; a restart is needed",
    99: "prerequisite validation failed (see the install log)",
    1641: "success; a restart is mandatory",
    3010: "success; a restart is required",
}

# msiexec.exe (Windows Installer), the codes an admin meets.
MSIEXEC: dict[int, str] = {
    0: "success",
    1601: "the Windows Installer service could not be accessed",
    1602: "the user cancelled the installation",
    1603: "fatal error during installation (see the log)",
    1605: "the product is not installed",
    1618: "another installation is in progress",
    1619: "the installation package could not be opened",
    1620: "the installation package could not be opened (invalid package)",
    1633: "the package is not supported on this platform",
    1638: "another version of the product is already installed",
    1639: "invalid command line argument",
    1641: "success; the installer started a restart",
    3010: "success; a restart is required",
}

TABLES: dict[str, dict[int, str]] = {"asr_unified_agent": ASR_UNIFIED_AGENT, "msiexec": MSIEXEC}


def message_for(code: int, messages: str | dict[int, str] | None) -> str:
    """The message for exit `code` from a table name or mapping; "" when there is none."""
    table = TABLES.get(messages, {}) if isinstance(messages, str) else (messages or {})
    return str(table.get(code, ""))
