"""`file`: a file on the target with a known sha256, pulled by the target or pushed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pushinstall.argspec import BOOLEAN, OBJECT, PATH, Arg, Rule
from pushinstall.errors import RemoteOpFailed
from pushinstall.model import Decision
from pushinstall.resources.base import Applied, ApplyContext, Plan, Probe
from pushinstall.resources.common import diff, local_sha256, probe_failure, reveal, short_hash

SHA256 = r"[0-9a-fA-F]{64}"
CREDENTIAL = (
    Arg("username", required=True, doc="Share user, e.g. CORP\\svc-asr."),
    Arg("password", required=True, secret=True, doc="Share password (use a secret var)."),
)

ARGS = (
    Arg("dest", PATH, required=True, doc="Destination path on the target."),
    Arg("src", PATH, required=True,
        doc="UNC path or http(s) URL the target pulls, or a file on the controller to push."),
    Arg("sha256", pattern=SHA256, pattern_doc="64 hexadecimal characters",
        doc="Expected hash; without it a controller file's own hash is used."),
    Arg("share_credential", OBJECT, fields=CREDENTIAL,
        doc="Credential for a share the remote session cannot reach (double hop)."),
    Arg("copy_as", default="session", choices=("session", "system"),
        doc="Who pulls a UNC source: the remote session (its logon cannot reach a share: "
            "the double hop) or the machine account, by a one-shot scheduled task as SYSTEM "
            "(the share must let the computer account read, as DSC's LCM needed)."),
    Arg("force", BOOLEAN, default=False,
        doc="Without a sha256 to compare: fetch again on every run."),
)
RULES: tuple[Rule, ...] = ()


# ---------------------------------------------------------------- runtime (base.py)


_URL = re.compile(r"^https?://", re.IGNORECASE)


def pulled_by_target(src: str) -> bool:
    """True for a UNC path or an HTTP(S) URL (the target downloads it itself); anything else
    is a controller path pushed over the transport."""
    return src.startswith("\\\\") or bool(_URL.match(src))


def _shown_source(src: str) -> str:
    # a URL's query string may hold a SAS token: a credential
    return src.split("?", 1)[0] if _URL.match(src) else src


def double_hop_message(error: RemoteOpFailed) -> str:
    """Why a remote session cannot read a share, and the four ways around it."""
    return (f"{error} A PSRP/WinRM/SSH session's logon cannot pass the admin's credential on "
            "to a file share (the double hop: no delegation with NTLM or plain Kerberos). "
            "Fix it one of four ways: share_credential (a secret: the target connects to the "
            "share with it); copy_as: system (the machine account copies it, by a one-shot "
            "scheduled task as SYSTEM; the share must grant the computer account read); an "
            "http(s) src pulled by the target (e.g. a blob SAS URL kept in a secret var); or "
            "a controller path as src (pushed over the session).")


def probes(args: dict[str, Any]) -> list[Probe]:
    """The destination's `file` fact with its sha256."""
    return [Probe("dest", {"kind": "file", "path": str(args["dest"])})]


def _wanted_hash(args: dict[str, Any]) -> tuple[str | None, Plan | None]:
    """The sha256 the destination must have: the playbook's, else (for a controller file)
    the controller file's own. A controller file that does not match the playbook's sha256,
    or cannot be read, is a `fail` plan."""
    src = str(reveal(args["src"]))
    given = str(args["sha256"]).lower() if args.get("sha256") else None
    if pulled_by_target(src):
        return given, None
    try:
        local = local_sha256(src)
    except OSError as error:
        return None, Plan(Decision.FAIL, reason=f"cannot read the controller file '{src}': "
                                                f"{error.strerror or error}")
    if given and local != given:
        return None, Plan(Decision.FAIL,
                          diff=diff(f"controller file '{src}'", short_hash(local),
                                    short_hash(given)),
                          reason=f"the controller file '{src}' has sha256 {local}, "
                                 f"the playbook expects {given}")
    return local, None


def plan(args: dict[str, Any], found: dict[str, Any]) -> Plan:
    """`ok` when the destination has the wanted sha256. Without any hash to compare (a
    remote source and no `sha256`) an existing file is `ok`, unless `force` (then it is
    fetched again on every run and cannot be verified)."""
    subject = f"file '{args['dest']}'"
    failed = probe_failure(found, subject)
    if failed:
        return failed
    wanted, refused = _wanted_hash(args)
    if refused:
        return refused
    fact = found["dest"]
    source = _shown_source(str(reveal(args["src"])))
    if fact.get("is_directory"):
        return Plan(Decision.FAIL, diff=diff(subject, "a directory", "a file"),
                    reason=f"a directory is in the way of {subject}")
    after = f"{short_hash(wanted)} from {source}" if wanted else f"copy of {source}"
    if not fact.get("exists"):
        return Plan(Decision.CHANGE, diff=diff(subject, "absent", after))
    if wanted and fact.get("sha256") == wanted:
        return Plan(Decision.OK)
    if wanted:
        return Plan(Decision.CHANGE, diff=diff(subject, short_hash(fact.get("sha256")), after))
    if args.get("force"):
        return Plan(Decision.CHANGE, diff=diff(subject, short_hash(fact.get("sha256")), after),
                    reason="force: fetched again", verifiable=False)
    return Plan(Decision.OK, reason=f"{subject} exists (no sha256 to compare; set sha256 or force)")


def apply(args: dict[str, Any], ctx: ApplyContext) -> Applied:
    """A UNC path or URL: `download` by the target (sha256 checked there, a share credential
    for the double hop). A controller path: `put_file` (sha256 checked)."""
    src, dest = str(reveal(args["src"])), str(args["dest"])
    wanted, refused = _wanted_hash(args)
    if refused:
        return Applied(changed=False, failed=True, message=refused.reason)
    if pulled_by_target(src):
        request: dict[str, Any] = {"source": src, "destination": dest}
        if wanted:
            request["sha256"] = wanted
        credential = args.get("share_credential")
        if credential:
            request["credential"] = {"username": str(credential["username"]),
                                     "password": reveal(credential["password"])}
        if args.get("copy_as") == "system" and src.startswith("\\\\"):
            request["run_as"] = "system"
        try:
            result = ctx.call("download", **request)
        except RemoteOpFailed as error:
            if error.error_type != "AccessDenied" or not src.startswith("\\\\"):
                raise
            return Applied(changed=False, failed=True, message=double_hop_message(error))
    else:
        assert wanted is not None  # a controller file always has its own hash
        result = ctx.put_file(Path(src).expanduser(), dest, wanted)
    return Applied(changed=bool(result.get("changed")),
                   message=f"{short_hash(result.get('sha256'))}, {result.get('size')} bytes")
