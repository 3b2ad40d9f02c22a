"""Request lines a lab process has decoded: a fleet's hosts send the same requests, so each is
decoded and validated once per process and then shared by every host (nothing changes a request
once sent). Only ops that cannot carry a secret, or megabytes, are kept.
"""

from __future__ import annotations

from typing import Any

from pushinstall.remote import ops


def valid(request: dict[str, Any]) -> bool:
    """True when `request` passes `ops.validate_request` as a whole."""
    try:
        ops.validate_request(request)
    except ValueError:
        return False
    return True


DECODED: dict[str, tuple[dict[str, Any], bool]] = {}
DECODED_MAX = 4096


def decoded(encoded: str) -> tuple[dict[str, Any], bool]:
    """A request line's request, and whether it passes validation as a whole."""
    known = DECODED.get(encoded)
    if known is not None:
        return known
    request = ops.decode_request(encoded)
    found = (request, valid(request))
    if not _carries_secret(request):
        if len(DECODED) >= DECODED_MAX:
            DECODED.clear()
        DECODED[encoded] = found
    return found


# write_secret, script parameters, set_registry values and download credentials may be secrets;
# file chunks are big
_KEPT_OPS = frozenset({"facts", "ensure_directory", "remove_file", "expand_archive",
                       "run_process", "set_service", "reboot", "download"})


def _carries_secret(request: Any) -> bool:
    if not isinstance(request, dict) or not isinstance(request.get("args"), dict):
        return True
    op, args = request.get("op"), request["args"]
    if op == "batch":
        inner = args.get("requests")
        return not isinstance(inner, list) or any(_carries_secret(r) for r in inner)
    return op not in _KEPT_OPS or "credential" in args
