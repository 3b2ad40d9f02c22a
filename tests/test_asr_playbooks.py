"""The shipped ASR playbooks: the package-data copy is the checkout's, and each playbook
validates against the lab inventory (every template, for every host)."""

from __future__ import annotations

from pathlib import Path

import pytest
from asr_kit import MOBILITY, PLAYBOOKS, ROOT, cli

import pushinstall


def test_the_package_data_copy_is_the_shipped_playbook() -> None:
    packaged = Path(pushinstall.__file__).parent / "playbooks" / "asr-mobility.yml"
    assert packaged.read_bytes() == Path(MOBILITY).read_bytes()


@pytest.mark.parametrize("name", ["asr-mobility.yml", "asr-upgrade.yml", "asr-uninstall.yml"])
def test_each_shipped_playbook_validates(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = cli(capsys, "validate", "-i", str(ROOT / "inventories" / "lab.yml"),
                    str(PLAYBOOKS / name))
    assert code == 0 and out.startswith("playbook OK: "), out
