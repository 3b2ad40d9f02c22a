"""`archive`: a zip on the target extracted into a directory, once."""

from __future__ import annotations

from pushinstall.resources.schema import Arg

ARGS = (
    Arg("src", required=True, doc="Zip file on the target."),
    Arg("dest", required=True, doc="Directory to extract into."),
)
