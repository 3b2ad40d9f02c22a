"""docs/playbook.md carries the resource argument tables generated from the schemas."""

from __future__ import annotations

from pathlib import Path

from pushinstall.playbook import STEP_KEYS
from pushinstall.playbook.settings import REBOOT_KEYS, SETTINGS_KEYS
from pushinstall.resources import resource_reference

DOC = Path(__file__).parent.parent / "docs" / "playbook.md"
BEGIN = "<!-- BEGIN GENERATED: resource arguments -->\n\n"
END = "\n<!-- END GENERATED: resource arguments -->"


def test_the_generated_tables_are_current() -> None:
    text = DOC.read_text()
    generated = text[text.index(BEGIN) + len(BEGIN):text.index(END)]
    assert generated == resource_reference(), "regenerate the tables (see docs/playbook.md)"


def test_every_setting_and_step_key_is_documented() -> None:
    text = DOC.read_text()
    for key in SETTINGS_KEYS:
        if key != "reboot":
            assert f"| `{key}` |" in text
    for key in REBOOT_KEYS:
        assert f"| `reboot.{key}` |" in text
    for key in STEP_KEYS:
        assert f"| `{key}` |" in text
