"""The lab network's files: the share `\\\\labshare\\asr\\` and the web server `labweb`.

Every lab host sees the same files. Simulated binaries are small blobs with a recognisable
header, `PUSHINSTALL-LAB-BINARY\\n` followed by JSON naming the program they stand for, so their
sha256 is stable: playbooks and tests pin it with `sha256_of`. A lab host runs a file by reading
that header (`identify`), wherever the file was copied to.

- `Microsoft-ASR_UA_9.62.0.0_Windows_GA_20240701_Release.exe`: the Mobility service bundle;
  `/q /x:DIR` extracts `UnifiedAgent.exe`, whose MSI installs ProductVersion 9.62.7172.1 (the
  build: `9.62.0.0` is only in the bundle's file name, as on Microsoft's downloads);
- `Microsoft-ASR_UA_9.60.0.0_Windows_GA_20240301_Release.exe`: the previous release, build
  9.60.6956.1 (upgrades);
- `Microsoft-ASR_UA_9.30.0.0_Windows_GA_20191031_Release.exe`: an old bundle, build
  9.30.5407.1, that still accepts the one-step `/Role "Agent" /CSEndpoint ...` (asr_mode
  legacy); bundles from 9.48 on refuse it with exit 2;
- `WindowsAzureVmAgent.msi`: the Azure VM agent 2.7.41491.1102, for `msiexec /i`;
- `ASRMobilityConfig.zip`: a real zip with `config.json` (modernized `/SourceConfigFilePath`).

Each is on the share and under `http://labweb/asr/` (and https).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from functools import lru_cache
from typing import Any

HEADER = b"PUSHINSTALL-LAB-BINARY\n"
SHARE = "\\\\labshare\\asr"
WEB_HOST = "labweb"
WEB_PATH = "/asr/"

# the builds (MSI ProductVersion, Uninstall DisplayVersion, InMage Version) the bundles carry
ASR_VERSION = "9.62.7172.1"
ASR_PREVIOUS_VERSION = "9.60.6956.1"
ASR_LEGACY_VERSION = "9.30.5407.1"
VM_AGENT_VERSION = "2.7.41491.1102"
ASR_BUNDLE = "Microsoft-ASR_UA_9.62.0.0_Windows_GA_20240701_Release.exe"
ASR_PREVIOUS_BUNDLE = "Microsoft-ASR_UA_9.60.0.0_Windows_GA_20240301_Release.exe"
ASR_LEGACY_BUNDLE = "Microsoft-ASR_UA_9.30.0.0_Windows_GA_20191031_Release.exe"
VM_AGENT_MSI = "WindowsAzureVmAgent.msi"
CONFIG_ZIP = "ASRMobilityConfig.zip"
_ZIP_TIME = (2024, 7, 1, 0, 0, 0)


def version_key(version: str) -> tuple[int, ...]:
    """A dotted version as numbers, so 9.62.7096.1 < 9.62.7172.1 < 9.100.0.0."""
    return tuple(int(part) for part in re.findall(r"\d+", version))


def binary(program: str, **meta: Any) -> bytes:
    """A simulated executable (or package) standing for `program`."""
    return _binary(program, tuple(sorted(meta.items())))


@lru_cache(maxsize=256)
def _binary(program: str, meta: tuple[tuple[str, Any], ...]) -> bytes:
    body = json.dumps({"program": program, **dict(meta)}, sort_keys=True,
                      separators=(",", ":"))
    return HEADER + body.encode("utf-8") + b"\n"


def identify(content: bytes) -> dict[str, Any] | None:
    """What a simulated binary stands for (`{"program", ...}`), or None for any other bytes."""
    if not content.startswith(HEADER):
        return None
    try:
        meta = json.loads(content[len(HEADER):].decode("utf-8"))
    except ValueError:
        return None
    return meta if isinstance(meta, dict) and isinstance(meta.get("program"), str) else None


def _config_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in (
            ("config.json", json.dumps({"ApplianceName": "lab-appliance",
                                        "CSType": "CSPrime"}, indent=2)),
            ("README.txt", "Source configuration for UnifiedAgentConfigurator.exe.\r\n"),
        ):
            archive.writestr(zipfile.ZipInfo(name, _ZIP_TIME), text)
    return buffer.getvalue()


@lru_cache(maxsize=1)
def files() -> dict[str, bytes]:
    """Every catalog file by name (the same names on the share and the web server)."""
    return {
        ASR_BUNDLE: binary("asr-bundle", version=ASR_VERSION),
        ASR_PREVIOUS_BUNDLE: binary("asr-bundle", version=ASR_PREVIOUS_VERSION),
        ASR_LEGACY_BUNDLE: binary("asr-bundle", version=ASR_LEGACY_VERSION),
        VM_AGENT_MSI: binary("vm-agent-msi", version=VM_AGENT_VERSION),
        CONFIG_ZIP: _config_zip(),
    }


def unified_agent(version: str) -> bytes:
    """`UnifiedAgent.exe` as the bundle of `version` extracts it."""
    return binary("unified-agent", version=version)


def configurator(version: str) -> bytes:
    """`UnifiedAgentConfigurator.exe`, installed by UnifiedAgent into `<location>\\agent\\`."""
    return binary("configurator", version=version)


_URL = re.compile(r"^https?://([^/?#]+)(/[^?#]*)?(?:\?.*)?$", re.IGNORECASE)


def name_of(source: str) -> str | None:
    """The catalog name a UNC path or URL refers to (None when it is not in the catalog)."""
    match = _URL.match(source)
    if match:
        if match.group(1).lower() != WEB_HOST or not (match.group(2) or "").startswith(WEB_PATH):
            return None
        name = (match.group(2) or "")[len(WEB_PATH):]
    elif source.lower().startswith(SHARE.lower() + "\\"):
        name = source[len(SHARE) + 1:]
    else:
        return None
    by_lower = {n.lower(): n for n in files()}
    return by_lower.get(name.lower())


def is_share(source: str) -> bool:
    """True for a UNC path on the lab share."""
    return source.lower().startswith(SHARE.lower() + "\\")


def is_web(source: str) -> bool:
    """True for a URL on the lab web server (known file or not)."""
    match = _URL.match(source)
    return match is not None and match.group(1).lower() == WEB_HOST


def sha256_of(source: str) -> str:
    """The sha256 of a catalog file, by name, UNC path or URL (KeyError when unknown)."""
    name = source if source in files() else name_of(source)
    if name is None:
        raise KeyError(source)
    return hashlib.sha256(files()[name]).hexdigest()


def share_path(name: str) -> str:
    """The UNC path of a catalog file."""
    return f"{SHARE}\\{name}"


def url(name: str, https: bool = False) -> str:
    """The URL of a catalog file on the lab web server."""
    return f"{'https' if https else 'http'}://{WEB_HOST}{WEB_PATH}{name}"
