"""The located YAML loader: positions, duplicate keys, syntax errors, unreadable files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pushinstall import source
from pushinstall.errors import InputError, Location
from pushinstall.source import (
    LocatedDict,
    LocatedList,
    check_keys,
    did_you_mean,
    load_yaml,
    load_yaml_text,
)

ROOT = Path(__file__).parent.parent


def test_positions_of_keys_values_and_items() -> None:
    data = load_yaml_text("a: 1\nb:\n  - x\n  - {c: 2}\n", "f.yml")
    assert isinstance(data, LocatedDict)
    assert data.key_location("b") == Location("f.yml", 2, 1)
    assert data.value_location("a") == Location("f.yml", 1, 4)
    assert data["b"].item_location(1) == Location("f.yml", 4, 5)
    assert data["b"][1].key_location("c") == Location("f.yml", 4, 6)


def test_duplicate_key_names_both_lines() -> None:
    with pytest.raises(InputError) as caught:
        load_yaml_text("hosts:\n  a: 1\n  a: 2\n", "inv.yml")
    assert str(caught.value) == (
        "inv.yml:3:3: duplicate key 'a' (each key once; first seen at line 2)"
    )


def test_syntax_error_points_at_problem() -> None:
    with pytest.raises(InputError) as caught:
        load_yaml_text("a: [1, 2\nb: 3\n", "p.yml")
    assert str(caught.value).startswith("p.yml:2:")
    assert "YAML syntax error" in str(caught.value)


def test_unsafe_tags_are_refused() -> None:
    with pytest.raises(InputError) as caught:
        load_yaml_text("a: !!python/object/apply:os.system ['echo hi']\n", "p.yml")
    assert str(caught.value).startswith("p.yml:1:4:")


def test_merge_keys_still_work() -> None:
    data = load_yaml_text("base: &b {x: 1}\nnode:\n  <<: *b\n  y: 2\n")
    assert data["node"] == {"x": 1, "y": 2}


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.yml:1:1: file not found \(an existing file\)"):
        load_yaml(tmp_path / "nope.yml")
    with pytest.raises(InputError, match="is a directory"):
        load_yaml(tmp_path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yml"
    path.write_bytes(b"a: caf\xe9\n")
    with pytest.raises(InputError, match="not UTF-8 text"):
        load_yaml(path)


def test_check_keys_suggests_the_closest() -> None:
    data = load_yaml_text("nmae: x\n", "p.yml")
    with pytest.raises(InputError) as caught:
        check_keys(data, ["name", "hosts"], "the playbook")
    assert str(caught.value) == (
        "p.yml:1:1: unknown key 'nmae' in the playbook; did you mean 'name'? "
        "(one of: name, hosts)"
    )
    with pytest.raises(InputError, match="missing required key 'hosts'"):
        check_keys(load_yaml_text("name: x\n", "p.yml"), ["name", "hosts"], "x", ["hosts"])
    assert did_you_mean("zzz", ["name"]) == ""


def _located(value: Any) -> Any:
    """`value` with every location it carries, for comparing two loads."""
    if isinstance(value, LocatedDict):
        return [value.location, *((key, value.key_location(key), value.value_location(key),
                                   _located(item)) for key, item in value.items())]
    if isinstance(value, LocatedList):
        return [value.location, *((value.item_location(index), _located(item))
                                  for index, item in enumerate(value))]
    return value


SNIPPETS = ["{path: }", "[a, {b: }]", "{a}", "a:\nb: 1\n", "a: # c\n  # d\nb:\n", "- \n- x\n",
            "hosts:\n  h1:\n  h2:\n", "a: ''\n", "[a, b]: 1\n", "a: &x {b: }\nc: *x\n"]


@pytest.mark.parametrize("path", [*sorted(
    str(p) for p in [*(ROOT / "playbooks").glob("*.yml"), *(ROOT / "inventories").glob("*.yml"),
                     *(ROOT / "tests" / "corpus").rglob("*.yml")]), *SNIPPETS])
def test_libyaml_and_pyyaml_parsers_give_the_same_located_data(path: str) -> None:
    # load_yaml parses with libyaml (7x faster) and reads again with PyYAML's own parser what
    # libyaml refuses or would place differently: where libyaml accepts, both must agree on
    # every value and location, and on every refusal of ours (duplicate keys, nesting, aliases)
    assert source._FastLoader is not None, "PyYAML without libyaml: the fast path is untested"
    text = path if path in SNIPPETS else Path(path).read_text(encoding="utf-8")
    results = []
    for loader_class in (source._FastLoader, source._Loader):
        loader = loader_class(text)
        loader.source_path = path
        try:
            results.append(_located(loader.get_single_data()))
        except InputError as refused:
            results.append(str(refused))
        except yaml.YAMLError:
            results.append("a YAML error")
        finally:
            loader.dispose()
    fast, pure = results
    assert fast == pure or fast == "a YAML error"
    if not isinstance(pure, str):       # and load_yaml, which reads again where they differ
        assert _located(load_yaml_text(text, path)) == pure
