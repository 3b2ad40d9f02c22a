"""`archive`: a zip on the target extracted into a directory, once."""

from __future__ import annotations

import hashlib
from typing import Any

from pushinstall.argspec import PATH, Arg, Rule
from pushinstall.model import Decision
from pushinstall.resources.base import Applied, ApplyContext, Plan, Probe
from pushinstall.resources.common import diff, probe_failure, short_hash

ARGS = (
    Arg("src", PATH, required=True, doc="Zip file on the target."),
    Arg("dest", PATH, required=True, doc="Directory to extract into."),
)
RULES: tuple[Rule, ...] = ()


# ---------------------------------------------------------------- runtime (base.py)


MARKER = ".pushinstall-expanded"


def marker_path(dest: str) -> str:
    """The marker `expand_archive` writes into the destination (it holds the zip's sha256)."""
    return dest.rstrip("\\/") + "\\" + MARKER


def probes(args: dict[str, Any]) -> list[Probe]:
    """The zip's hash and the marker's hash."""
    return [Probe("archive", {"kind": "file", "path": str(args["src"])}),
            Probe("marker", {"kind": "file", "path": marker_path(str(args["dest"]))})]


def plan(args: dict[str, Any], found: dict[str, Any]) -> Plan:
    """`ok` when the marker holds this zip's sha256 (the marker's content is the hex digest,
    so its own sha256 is the digest's digest: decided from facts, no content read)."""
    subject = f"archive '{args['src']}' in '{args['dest']}'"
    failed = probe_failure(found, subject)
    if failed:
        return failed
    archive, marker = found["archive"], found["marker"]
    if not archive.get("exists") or archive.get("is_directory"):
        return Plan(Decision.FAIL, diff=diff(subject, "no zip", "extracted"),
                    reason=f"the archive '{args['src']}' does not exist on the host")
    expected = hashlib.sha256(str(archive.get("sha256", "")).encode("ascii")).hexdigest()
    if marker.get("exists") and marker.get("sha256") == expected:
        return Plan(Decision.OK)
    before = "extracted from another archive" if marker.get("exists") else "not extracted"
    return Plan(Decision.CHANGE, diff=diff(subject, before,
                                           f"extracted ({short_hash(archive.get('sha256'))})"))


def apply(args: dict[str, Any], ctx: ApplyContext) -> Applied:
    """`expand_archive` (it writes the marker)."""
    result = ctx.call("expand_archive", path=str(args["src"]), destination=str(args["dest"]))
    return Applied(changed=bool(result.get("changed")),
                   message=f"{result.get('files', 0)} files extracted")
