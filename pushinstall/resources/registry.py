"""`registry`: a registry value equals something (set it, or only assert it)."""

from __future__ import annotations

from pushinstall.resources.schema import ANY, Arg

HIVE_KEY = (
    r"(?i)(HKLM|HKCU|HKU|HKCR|HKEY_LOCAL_MACHINE|HKEY_CURRENT_USER|HKEY_USERS|HKEY_CLASSES_ROOT)"
    r":?\\.+"
)

ARGS = (
    Arg("key", required=True, pattern=HIVE_KEY, pattern_doc="a key like HKLM:\\SOFTWARE\\Vendor",
        doc="Registry key."),
    Arg("name", required=True, doc="Value name ('' for the default value)."),
    Arg("value", ANY, required=True, doc="Desired data."),
    Arg("type", default="String",
        choices=("String", "ExpandString", "DWord", "QWord", "MultiString")),
    Arg("view", default="64", choices=("64", "32"), doc="Registry view."),
    Arg("mode", default="set", choices=("set", "assert"),
        doc="assert: a difference fails the step and nothing is written."),
)
