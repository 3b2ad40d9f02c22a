"""`directory`: a directory exists on the target."""

from __future__ import annotations

from pushinstall.resources.schema import Arg

ARGS = (Arg("path", required=True, doc="Directory on the target, parents created."),)
