"""What a host's facts summary tells of the ASR Mobility service: the agent build and the
configuration server it is registered to, read from facts the steps gather anyway.

- The agent build is the `product` fact of the Mobility service's product code (the Uninstall
  entry `UnifiedAgent.exe` writes; docs/lab.md, docs/migrating-from-dsc.md): its `version`.
- The registered configuration server is the `ini` fact of the agent's `drscout.conf`,
  `[vxagent.transport] Hostname` (docs/ops.md, `ini`; docs/lab.md says which parts of that
  are proven).

No extra query is sent: the shipped playbook's install step asks for the product and its
preflight and register steps for the ini value, and whatever the playbook gathered last (the
verify of a changed step) is what the summary shows.
"""

from __future__ import annotations

from typing import Any

MOBILITY_PRODUCT_ID = "{275197FC-14FD-4560-A5EB-38217F80CBD1}"
REGISTRATION_FILE = "drscout.conf"
REGISTRATION_KEY = ("vxagent.transport", "hostname")
SUMMARY_KEYS = ("agent_build", "configuration_server")


def summary_of(query: dict[str, Any], fact: Any) -> dict[str, str | None]:
    """The summary entries one gathered fact gives: `agent_build` (None: not installed) for
    the Mobility service's product, `configuration_server` (None: not registered) for
    drscout.conf's Hostname; {} for any other fact or a fact that could not be read."""
    if not isinstance(fact, dict) or "error" in fact:
        return {}
    kind = query.get("kind")
    if kind == "product" and str(query.get("product_id", "")).upper() == MOBILITY_PRODUCT_ID:
        installed = fact.get("installed") and fact.get("version")
        return {"agent_build": str(fact["version"]) if installed else None}
    if kind == "ini" and str(query.get("path", "")).lower().endswith(REGISTRATION_FILE) and \
            (str(query.get("section", "")).lower(), str(query.get("key", "")).lower()) \
            == REGISTRATION_KEY:
        value = str(fact.get("value") or "").strip() if fact.get("found") else ""
        return {"configuration_server": value or None}
    return {}
