"""Inventories, playbook settings, step keys and resource arguments take the same boolean words
(`source.BOOLEAN_WORDS`): a quoted 'yes' passes in each, or in none."""

from __future__ import annotations

from pathlib import Path

import pytest

from pushinstall.errors import InputError
from pushinstall.inventory import load_inventory
from pushinstall.playbook import host_variables, load_playbook, render_step

PLAYBOOK = """\
name: words
hosts: all
settings: {{any_errors_fatal: '{word}'}}
steps:
  - name: Bundle
    no_log: '{word}'
    file: {{src: '\\\\\\\\srv\\\\share\\\\x.exe', dest: 'C:\\\\Temp\\\\x.exe', force: '{word}'}}
"""
INVENTORY = "all:\n  vars: {{tls: '{word}', transport: psrp}}\n  hosts: {{web01: }}\n"


@pytest.mark.parametrize(("word", "value"), [("yes", True), ("No", False), ("TRUE", True),
                                             ("false", False)])
def test_a_boolean_word_means_the_same_everywhere(tmp_path: Path, word: str,
                                                  value: bool) -> None:
    (tmp_path / "pb.yml").write_text(PLAYBOOK.format(word=word), encoding="utf-8")
    (tmp_path / "inv.yml").write_text(INVENTORY.format(word=word), encoding="utf-8")
    playbook = load_playbook(str(tmp_path / "pb.yml"))
    host = load_inventory([str(tmp_path / "inv.yml")]).hosts["web01"]
    step = playbook.steps[0]
    args = render_step(step, host_variables(host, playbook, {}))
    assert (playbook.settings.any_errors_fatal, step.no_log, args["force"],
            host.connection.tls) == (value, value, value, value)


def test_other_words_are_refused_in_each(tmp_path: Path) -> None:
    (tmp_path / "pb.yml").write_text(PLAYBOOK.format(word="maybe"), encoding="utf-8")
    (tmp_path / "inv.yml").write_text(INVENTORY.format(word="maybe"), encoding="utf-8")
    with pytest.raises(InputError, match="true or false"):
        load_playbook(str(tmp_path / "pb.yml"))
    with pytest.raises(InputError, match="true or false"):
        load_inventory([str(tmp_path / "inv.yml")])
