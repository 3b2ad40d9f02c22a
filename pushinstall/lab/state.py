"""One lab host's machine state, and the Windows rules that read it the way agent.ps1 does.

The state is one JSON-able dict (`HostState.data`), saved to `<state dir>/lab/<host>.json`
(file contents in `<host>.files/`, through a `BlobStore`). Every change goes through a method
here, the registry's or the file system's, which count them (`changes`), so the host knows
whether a call changed the machine without comparing the whole state.

Like agent.ps1, the lab derives facts from where Windows keeps them, so there is one source for
each: a service's start mode from
`HKLM\\SYSTEM\\CurrentControlSet\\Services\\<name>` `Start`/`DelayedAutostart`, pending-reboot
signals from the Session Manager, CBS, Windows Update and ComputerName keys, installed products
from the Uninstall keys of both views. A `set_registry` that writes those places changes the
facts exactly as on Windows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pushinstall.lab.blobs import BlobStore
from pushinstall.lab.fs import FileSystem
from pushinstall.lab.registry import Registry, canonical_key

SERVICES_KEY = "HKLM:\\SYSTEM\\CurrentControlSet\\Services"
UPDATES = "HKLM:\\SOFTWARE\\Microsoft\\Updates"
NETLOGON = "HKLM:\\SYSTEM\\CurrentControlSet\\Services\\Netlogon"
DRIVERS = "C:\\Windows\\System32\\drivers"
# LogonUI recreates this key once a boot has come up; the agent's reboot removes it first
AUTOLOGON_CHECKED = ("HKLM:\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon\\"
                     "AutoLogonChecked")
SESSION_MANAGER = "HKLM:\\SYSTEM\\CurrentControlSet\\Control\\Session Manager"
COMPUTER_NAME = "HKLM:\\SYSTEM\\CurrentControlSet\\Control\\ComputerName"
CBS_REBOOT = ("HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Component Based Servicing"
              "\\RebootPending")
WU_REBOOT = ("HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\WindowsUpdate\\Auto Update"
             "\\RebootRequired")
UNINSTALL = "HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall"
_START_VALUES = {"Automatic": 2, "AutomaticDelayed": 2, "Manual": 3, "Disabled": 4}
_START_MODES = {0: "Boot", 1: "System", 2: "Automatic", 3: "Manual", 4: "Disabled"}


class HostState:
    """The machine: registry, file system, services, boot time, op history."""

    def __init__(self, data: dict[str, Any], blob_dir: Path) -> None:
        self.data = data
        self.registry = Registry(data["registry"])
        self.blobs = BlobStore(blob_dir)
        self.fs = FileSystem(data["fs"], self.blobs)
        self._changes = 0

    @property
    def changes(self) -> int:
        """How many changes were made through this object (grows, never shrinks)."""
        return self._changes + self.registry.changes + self.fs.changes

    def put(self, name: str, value: Any) -> None:
        """Set a top-level field of the machine (`boot_time`, `dark_until`)."""
        if self.data.get(name) != value:
            self.data[name] = value
            self._changes += 1

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        """Service records by lowercase name: `{"name", "display_name", "status"}`."""
        services: dict[str, dict[str, Any]] = self.data["services"]
        return services

    # ------------------------------------------------------------ services

    def find_service(self, name: str) -> dict[str, Any] | None:
        """By service name, then display name; case-insensitive, no wildcards."""
        found = self.services.get(name.lower())
        if found is not None:
            return found
        for record in self.services.values():
            if record["display_name"].lower() == name.lower():
                return record
        return None

    def add_service(self, name: str, display_name: str, start_mode: str, image_path: str,
                    status: str = "Stopped", description: str = "") -> dict[str, Any]:
        """Create (or redefine) a service, with its registry key as the SCM writes it."""
        key = f"{SERVICES_KEY}\\{name}"
        self.registry.set(key, "DisplayName", display_name, "String")
        self.registry.set(key, "ImagePath", image_path, "ExpandString")
        self.registry.set(key, "ObjectName", "LocalSystem", "String")
        self.registry.set(key, "Type", 16, "DWord")
        if description:
            self.registry.set(key, "Description", description, "String")
        self.set_start_mode(name, start_mode)
        record = {"name": name, "display_name": display_name, "status": status}
        self.services[name.lower()] = record
        self._changes += 1
        return record

    def remove_service(self, name: str) -> None:
        """Delete a service and its registry key."""
        if self.services.pop(name.lower(), None) is not None:
            self._changes += 1
        self.registry.delete_key(f"{SERVICES_KEY}\\{name}")

    def set_status(self, record: dict[str, Any], status: str) -> None:
        """A service record's status (`Running` / `Stopped`)."""
        if record["status"] != status:
            record["status"] = status
            self._changes += 1

    def start_mode(self, name: str) -> str | None:
        """From the registry, as agent.ps1 reads it."""
        key = f"{SERVICES_KEY}\\{name}"
        start = self.registry.value(key, "Start")
        if not isinstance(start, int):
            return None
        if start == 2 and self.registry.value(key, "DelayedAutostart") == 1:
            return "AutomaticDelayed"
        return _START_MODES.get(start)

    def set_start_mode(self, name: str, mode: str) -> bool:
        """What `sc.exe config NAME start= ...` does; True when the mode changed."""
        if self.start_mode(name) == mode:
            return False
        key = f"{SERVICES_KEY}\\{name}"
        self.registry.set(key, "Start", _START_VALUES[mode], "DWord")
        if mode == "AutomaticDelayed":
            self.registry.set(key, "DelayedAutostart", 1, "DWord")
        elif self.registry.value(key, "DelayedAutostart") is not None:
            self.registry.set(key, "DelayedAutostart", 0, "DWord")
        return True

    # ------------------------------------------------------------ pending reboot

    def pending_signals(self) -> dict[str, bool]:
        """The signals the agent reads (ops.PENDING_SIGNALS), from the same places."""
        active = self.registry.value(f"{COMPUTER_NAME}\\ActiveComputerName", "ComputerName")
        upcoming = self.registry.value(f"{COMPUTER_NAME}\\ComputerName", "ComputerName")

        def non_empty(value: Any) -> bool:
            items = value if isinstance(value, list) else [value]
            return any(item not in (None, "") for item in items)

        return {
            "pending_file_rename": non_empty(
                self.registry.value(SESSION_MANAGER, "PendingFileRenameOperations")),
            "pending_file_rename2": non_empty(
                self.registry.value(SESSION_MANAGER, "PendingFileRenameOperations2")),
            "component_based_servicing": self.registry.key_exists(CBS_REBOOT),
            "windows_update": self.registry.key_exists(WU_REBOOT),
            "computer_rename": active is not None and upcoming is not None
            and str(active) != str(upcoming),
            "update_exe_volatile": self.registry.value(UPDATES, "UpdateExeVolatile")
            not in (None, 0),
            "domain_join": any(self.registry.value(NETLOGON, name) is not None
                               for name in ("JoinDomain", "AvoidSpnSet")),
            "asr_driver_uninstalled": any(
                self.fs.is_file(f"{DRIVERS}\\{driver}.sys")
                and not self.registry.key_exists(f"{SERVICES_KEY}\\{driver}")
                for driver in ("InDskFlt", "involflt")),
        }

    def set_pending(self, signal: str, what: str = "C:\\Windows\\Temp\\pushinstall.tmp") -> None:
        """Raise one pending-reboot signal the way Windows records it."""
        if signal in ("pending_file_rename", "pending_file_rename2"):
            name = "PendingFileRenameOperations" + ("2" if signal.endswith("2") else "")
            current = self.registry.value(SESSION_MANAGER, name) or []
            self.registry.set(SESSION_MANAGER, name, [*current, f"\\??\\{what}", ""],
                              "MultiString")
        elif signal == "component_based_servicing":
            self.registry.create_key(CBS_REBOOT)
        elif signal == "windows_update":
            self.registry.create_key(WU_REBOOT)
        elif signal == "update_exe_volatile":
            self.registry.set(UPDATES, "UpdateExeVolatile", 1, "DWord")
        elif signal == "domain_join":
            self.registry.set(NETLOGON, "JoinDomain", "lab.local", "String")
        elif signal == "computer_rename":
            active = self.registry.value(f"{COMPUTER_NAME}\\ActiveComputerName", "ComputerName")
            self.registry.set(f"{COMPUTER_NAME}\\ComputerName", "ComputerName",
                              f"{active}-NEW"[:15], "String")

    def clear_pending(self) -> None:
        """What a restart does to the signals: renames done, servicing finished, name active,
        the domain joined, an uninstalled ASR driver's file gone."""
        self.registry.delete_value(UPDATES, "UpdateExeVolatile")
        self.registry.delete_value(NETLOGON, "JoinDomain")
        self.registry.delete_value(NETLOGON, "AvoidSpnSet")
        for driver in ("InDskFlt", "involflt"):
            if not self.registry.key_exists(f"{SERVICES_KEY}\\{driver}"):
                self.fs.remove(f"{DRIVERS}\\{driver}.sys")
        self.registry.delete_value(SESSION_MANAGER, "PendingFileRenameOperations")
        self.registry.delete_value(SESSION_MANAGER, "PendingFileRenameOperations2")
        self.registry.delete_key(CBS_REBOOT)
        self.registry.delete_key(WU_REBOOT)
        upcoming = self.registry.value(f"{COMPUTER_NAME}\\ComputerName", "ComputerName")
        if upcoming is not None:
            self.registry.set(f"{COMPUTER_NAME}\\ActiveComputerName", "ComputerName",
                              upcoming, "String")

    # ------------------------------------------------------------ products

    def find_product(self, product_id: str = "", name: str = "") -> dict[str, Any] | None:
        """An Uninstall entry by key name or exact DisplayName, 64-bit view first."""
        for view in ("64", "32"):
            if product_id and not name:   # by key name only: look it up, not through all
                entry = self.registry.keys.get(
                    canonical_key(f"{UNINSTALL}\\{product_id}", view).lower())
                subs = [entry["path"].rsplit("\\", 1)[-1]] if entry else []
            else:
                subs = self.registry.subkeys(UNINSTALL, view)
            for sub in subs:
                key = f"{UNINSTALL}\\{sub}"
                display = self.registry.value(key, "DisplayName", view)
                # PowerShell's -eq, as agent.ps1 compares: case-insensitive
                if (product_id and sub.lower() == product_id.lower()) or (
                        name and isinstance(display, str) and display.lower() == name.lower()):
                    return {
                        "installed": True, "product_id": sub, "name": display,
                        "version": self.registry.value(key, "DisplayVersion", view),
                        "install_location": self.registry.value(key, "InstallLocation", view),
                        "view": view,
                    }
        return None

    def add_product(self, product_id: str, view: str, values: dict[str, Any]) -> None:
        """Write an Uninstall entry (values: name -> str or int)."""
        key = f"{UNINSTALL}\\{product_id}"
        for name, value in values.items():
            kind = "DWord" if isinstance(value, int) else "String"
            self.registry.set(key, name, value, kind, view)

    def remove_product(self, product_id: str, view: str) -> None:
        """Delete an Uninstall entry."""
        self.registry.delete_key(f"{UNINSTALL}\\{product_id}", view)
