"""`file`: a file on the target with a known sha256, pulled by the target or pushed."""

from __future__ import annotations

from pushinstall.resources.schema import BOOL, MAP, Arg

SHA256 = r"[0-9a-fA-F]{64}"
CREDENTIAL = (
    Arg("username", required=True, doc="Share user, e.g. CORP\\svc-asr."),
    Arg("password", required=True, secret=True, doc="Share password (use a secret var)."),
)

ARGS = (
    Arg("dest", required=True, doc="Destination path on the target."),
    Arg("src", required=True,
        doc="UNC path or http(s) URL the target pulls, or a file on the controller to push."),
    Arg("sha256", pattern=SHA256, pattern_doc="64 hexadecimal characters",
        doc="Expected hash; without it a controller file's own hash is used."),
    Arg("share_credential", MAP, fields=CREDENTIAL,
        doc="Credential for a share the remote session cannot reach (double hop)."),
    Arg("force", BOOL, default=False, doc="Copy even when the destination hash matches."),
)
