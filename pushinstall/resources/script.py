"""`script`: user PowerShell with a `test` and a `set` block, the escape hatch."""

from __future__ import annotations

from pushinstall.resources.schema import MAP, Arg

ARGS = (
    Arg("test", doc="PowerShell that outputs $true when the host is compliant."),
    Arg("set", required=True, doc="PowerShell that makes it compliant."),
    Arg("parameters", MAP, default={}, doc="Data passed as the hashtable $Parameters."),
)
