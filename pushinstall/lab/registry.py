"""The simulated registry: keys and typed values, case-insensitive, with both views.

One store holds every key by its 64-bit path. The 32-bit view is WOW64 redirection as Windows
does it: `HKLM\\SOFTWARE\\X` read in view "32" is `HKLM\\SOFTWARE\\WOW6432Node\\X`. Values are
kept in their JSON form (docs/ops.md: strings, integers, lists of strings, base64 for Binary).
`changes` counts the calls that changed something (the host's generation is derived from it).
"""

from __future__ import annotations

import functools
import re
from typing import Any

_KEY = re.compile(
    r"^(?:Registry::)?(HKLM|HKEY_LOCAL_MACHINE|HKCU|HKEY_CURRENT_USER|HKU|HKEY_USERS|HKCR|"
    r"HKEY_CLASSES_ROOT):?(?:\\(.*))?$",
    re.IGNORECASE | re.DOTALL,
)
_HIVES = {"HKEY_LOCAL_MACHINE": "HKLM", "HKEY_CURRENT_USER": "HKCU", "HKEY_USERS": "HKU",
          "HKEY_CLASSES_ROOT": "HKCR"}


class RegistryError(ValueError):
    """A key path that names no hive."""


@functools.lru_cache(maxsize=4096)
def canonical_key(path: str, view: str = "64") -> str:
    """`HKLM\\Sub\\Key` for any accepted spelling of `path`, WOW64-redirected for view "32"."""
    match = _KEY.match(path)
    if match is None:
        raise RegistryError(f"registry key must start with HKLM:, HKCU:, HKU: or HKCR: ({path})")
    hive = match.group(1).upper()
    hive = _HIVES.get(hive, hive)
    parts = [p for p in (match.group(2) or "").split("\\") if p]
    redirected = view == "32" and hive == "HKLM" and parts[:1] and parts[0].lower() == "software"
    if redirected and (len(parts) < 2 or parts[1].lower() != "wow6432node"):
        parts.insert(1, "WOW6432Node")
    return "\\".join([hive, *parts])


class Registry:
    """Keys (`{lower path: {"path", "values": {lower name: {"name", "type", "value"}}}}`)."""

    def __init__(self, keys: dict[str, Any] | None = None) -> None:
        self.keys: dict[str, dict[str, Any]] = keys if keys is not None else {}
        self.changes = 0

    def key_exists(self, path: str, view: str = "64") -> bool:
        """True when the key exists (a hive root always does)."""
        key = canonical_key(path, view)
        return "\\" not in key or key.lower() in self.keys

    def create_key(self, path: str, view: str = "64") -> dict[str, Any]:
        """The key, created with its parents when missing."""
        key = canonical_key(path, view)
        found = self.keys.get(key.lower())
        if found is not None:
            return found
        parts = key.split("\\")
        entry: dict[str, Any] = {}
        for end in range(2, len(parts) + 1):
            sub = "\\".join(parts[:end])
            found = self.keys.get(sub.lower())
            if found is None:
                found = self.keys[sub.lower()] = {"path": sub, "values": {}}
                self.changes += 1
            entry = found
        return entry

    def get(self, path: str, name: str, view: str = "64") -> dict[str, Any] | None:
        """`{"name", "type", "value"}` or None (missing key or value)."""
        entry = self.keys.get(canonical_key(path, view).lower())
        if entry is None:
            return None
        value: dict[str, Any] | None = entry["values"].get(name.lower())
        return value

    def value(self, path: str, name: str, view: str = "64") -> Any:
        """The value's data, or None."""
        found = self.get(path, name, view)
        return None if found is None else found["value"]

    def set(self, path: str, name: str, value: Any, kind: str, view: str = "64") -> bool:
        """Write a value (creating the key); True when anything changed."""
        entry = self.create_key(path, view)
        old = entry["values"].get(name.lower())
        if old is not None and old["type"] == kind and old["value"] == value:
            return False
        entry["values"][name.lower()] = {"name": name if old is None else old["name"],
                                         "type": kind, "value": value}
        self.changes += 1
        return True

    def delete_value(self, path: str, name: str, view: str = "64") -> bool:
        """Remove a value; True when it existed."""
        entry = self.keys.get(canonical_key(path, view).lower())
        removed = entry is not None and entry["values"].pop(name.lower(), None) is not None
        self.changes += removed
        return removed

    def delete_key(self, path: str, view: str = "64") -> bool:
        """Remove a key and its subkeys; True when it existed."""
        key = canonical_key(path, view).lower()
        doomed = [k for k in self.keys if k == key or k.startswith(key + "\\")]
        for k in doomed:
            del self.keys[k]
        self.changes += bool(doomed)
        return bool(doomed)

    def subkeys(self, path: str, view: str = "64") -> list[str]:
        """Names of the direct subkeys, in creation order."""
        key = canonical_key(path, view).lower()
        depth = key.count("\\") + 1
        return [entry["path"].split("\\")[-1] for k, entry in self.keys.items()
                if k.startswith(key + "\\") and k.count("\\") == depth]
