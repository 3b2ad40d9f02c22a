"""Inventory loading: structure, precedence, ranges, Ansible aliases, secrets, limit patterns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pushinstall.cli import main
from pushinstall.errors import InputError, Location
from pushinstall.inventory import describe_host, load_inventory, select_hosts
from pushinstall.inventory.connection import NO_VALIDATION_WARNING
from pushinstall.inventory.loader import expand_range
from pushinstall.inventory.secrets import (
    SecretRef,
    is_secret_name,
    mask_secrets,
    resolve_secrets,
)
from pushinstall.secret import MASK, Secret

ROOT = Path(__file__).parent.parent
HERE = Location("t.yml", 1, 1)


def write(tmp_path: Path, text: str, name: str = "inv.yml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


NESTED = """
all:
  vars: {tier: all, site: none, owner: all}
  children:
    site_ams:
      vars: {tier: site, site: ams}
      children:
        ams_web:
          vars: {tier: role}
          hosts:
            web[01:03]:
            web02: {tier: host}
    zz_other:
      hosts:
        web03:
"""


def test_precedence_host_over_child_over_parent_over_all(tmp_path: Path) -> None:
    inv = load_inventory([write(tmp_path, NESTED)])
    assert list(inv.hosts) == ["web01", "web02", "web03"]
    assert inv.hosts["web01"].vars == {"tier": "role", "site": "ams", "owner": "all"}
    assert inv.hosts["web02"].vars["tier"] == "host"
    assert inv.hosts["web03"].groups == ["site_ams", "zz_other", "ams_web"]
    assert inv.hosts["web01"].location == Location(str(tmp_path / "inv.yml"), 11, 13)


def test_ranges() -> None:
    assert expand_range("web[01:03].corp", HERE) == ["web01.corp", "web02.corp", "web03.corp"]
    assert expand_range("db[a:c]", HERE) == ["dba", "dbb", "dbc"]
    assert expand_range("n[1:9:4]", HERE) == ["n1", "n5", "n9"]
    assert expand_range("r[1:2]-[a:b]", HERE) == ["r1-a", "r1-b", "r2-a", "r2-b"]
    assert expand_range("[08:10]", HERE) == ["08", "09", "10"]
    with pytest.raises(InputError, match="START not above END"):
        expand_range("web[9:1]", HERE)


ANSIBLE = """
all:
  children:
    windows:
      hosts:
        win01.example.com:
          ansible_host: 192.0.2.10
      vars:
        ansible_user: EXAMPLE\\ansible
        ansible_password: S3cret-Pa55
        ansible_connection: winrm
        ansible_winrm_transport: kerberos
        ansible_winrm_server_cert_validation: ignore
        ansible_port: 5986
    psrp_hosts:
      hosts:
        win02.example.com:
      vars:
        ansible_connection: psrp
        ansible_psrp_auth: ntlm
        ansible_psrp_protocol: http
"""


def test_an_ansible_inventory_loads_unchanged(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                              ) -> None:
    path = write(tmp_path, ANSIBLE)
    inv = load_inventory([path])
    win01 = inv.hosts["win01.example.com"].connection
    assert (win01.transport, win01.address, win01.port, win01.auth) == (
        "winrm", "192.0.2.10", 5986, "kerberos")
    assert win01.cert_validation is False
    assert win01.username == "EXAMPLE\\ansible"
    assert isinstance(win01.password, Secret) and win01.password.reveal() == "S3cret-Pa55"
    win02 = inv.hosts["win02.example.com"].connection
    assert (win02.transport, win02.auth, win02.tls, win02.port) == ("psrp", "ntlm", False, 5985)
    # The plaintext password and `ignore` are allowed, each with one warning at its file:line.
    err = capsys.readouterr().err.splitlines()
    assert err == [f"{path}:10:27: warning: plaintext password; use {{env: NAME}}, "
                   "{file: PATH} or {prompt: true}",
                   f"{path}:13:47: {NO_VALIDATION_WARNING}"]


def test_our_names_win_over_ansible_aliases(tmp_path: Path) -> None:
    inv = load_inventory([write(tmp_path, """
all:
  hosts:
    h: {ansible_port: 1111, port: 2222, ansible_connection: winrm, transport: ssh}
""")])
    conn = inv.hosts["h"].connection
    assert (conn.port, conn.transport) == (2222, "ssh")


def test_defaults_are_safe(tmp_path: Path) -> None:
    conn = load_inventory([write(tmp_path, "all:\n  hosts:\n    h:\n")]).hosts["h"].connection
    assert (conn.transport, conn.tls, conn.cert_validation, conn.port, conn.auth) == (
        "psrp", True, True, 5986, "negotiate")
    basic_https = write(tmp_path, "all:\n  vars: {auth: basic}\n  hosts:\n    h:\n", "b.yml")
    assert load_inventory([basic_https]).hosts["h"].connection.auth == "basic"


def test_secrets_are_read_only_when_a_run_needs_them(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pass.txt").write_text("from-a-file\n")
    path = write(tmp_path, """
all:
  vars:
    password: {env: PI_TEST_PASSWORD}
    asr_passphrase: {file: pass.txt}
    other: {prompt: true}
  hosts:
    h:
""")
    monkeypatch.delenv("PI_TEST_PASSWORD", raising=False)
    inv = load_inventory([path])          # nothing read yet: loading never fails on secrets
    host = inv.hosts["h"]
    assert isinstance(host.connection.password, SecretRef)
    assert host.vars["asr_passphrase"].reveal() == "from-a-file"   # relative to the inventory
    with pytest.raises(InputError) as caught:
        resolve_secrets(host.connection.password)
    assert str(caught.value) == (
        f"{path}:4:15: environment variable 'PI_TEST_PASSWORD' for 'password' is not set "
        "(export PI_TEST_PASSWORD=... before the run)")
    monkeypatch.setenv("PI_TEST_PASSWORD", "from-env")
    assert host.connection.password.reveal() == "from-env"
    with pytest.raises(InputError, match="asks for a prompt, but there is no terminal"):
        host.vars["other"].reveal()      # pytest's stdin is not a TTY


def test_describe_host_masks_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ASR_PUSH_PASSWORD", "hunter2-very-secret")
    shown = describe_host(load_inventory([str(ROOT / "inventories" / "example.yml")]),
                          "sql02.ams.corp.example")
    text = json.dumps(shown)
    assert "hunter2" not in text
    assert shown["connection"]["password"] == f"{MASK} (env ASR_PUSH_PASSWORD)"
    assert shown["connection"]["address"] == "10.1.20.32"
    assert shown["vars"]["asr_installer_share"] == "\\\\fs-ams.corp.example\\asr"
    assert shown["groups"] == ["site_ams", "ams_sql"]
    # Through the CLI, as JSON.
    with pytest.raises(SystemExit) as done:
        main(["inventory", "-i", str(ROOT / "inventories" / "example.yml"), "--host",
              "legacy01.dub.corp.example", "--json"])
    assert done.value.code == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["connection"]["transport"], data["connection"]["port"]) == ("winrm", 5985)


@pytest.mark.parametrize(("pattern", "expected"), [
    ("all", ["web01", "web02", "web03"]),
    ("web01,web03", ["web01", "web03"]),
    ("ams_web:!web02", ["web01", "web03"]),
    ("all,&zz_other", ["web03"]),
    ("web0[12]", ["web01", "web02"]),
    ("zz_*", ["web03"]),
    ("~web0[23]", ["web02", "web03"]),
    ("!web01", ["web02", "web03"]),
])
def test_limit_patterns(tmp_path: Path, pattern: str, expected: list[str]) -> None:
    inv = load_inventory([write(tmp_path, NESTED)])
    assert [h.name for h in select_hosts(inv, "all", pattern)] == expected


def test_limit_from_file_and_playbook_pattern(tmp_path: Path) -> None:
    inv = load_inventory([write(tmp_path, NESTED)])
    hosts_file = tmp_path / "failed.txt"
    hosts_file.write_text("# last night's failures\nweb03\nweb01  # flaky\n")
    assert [h.name for h in select_hosts(inv, "all", f"@{hosts_file}")] == ["web01", "web03"]
    where = Location("p.yml", 2, 8)
    with pytest.raises(InputError) as caught:
        select_hosts(inv, "db_servers", pattern_location=where)
    assert str(caught.value) == ("p.yml:2:8: hosts pattern 'db_servers' matches no host "
                                 "(a host, group or glob of the inventory)")


def test_several_files_merge(tmp_path: Path) -> None:
    first = write(tmp_path, "all:\n  hosts:\n    a:\n  vars: {x: 1}\n", "one.yml")
    second = write(tmp_path, "all:\n  children:\n    g:\n      hosts:\n        a: {y: 2}\n"
                             "        b:\n", "two.yml")
    inv = load_inventory([first, second])
    assert list(inv.hosts) == ["a", "b"]
    assert inv.hosts["a"].vars == {"x": 1, "y": 2}
    assert inv.hosts["a"].groups == ["g"]


def test_shipped_inventories_load() -> None:
    example = load_inventory([str(ROOT / "inventories" / "example.yml")])
    assert len(example.hosts) == 24
    lab = load_inventory([str(ROOT / "inventories" / "lab.yml")])
    assert {h.connection.transport for h in lab.hosts.values()} == {"lab"}
    resolve_secrets([h.vars for h in lab.hosts.values()])  # the lab's secret files exist


def test_ansible_idioms_port_5985_fqcn_and_transport_lists(tmp_path: Path) -> None:
    inv = load_inventory([write(tmp_path, """
all:
  hosts:
    a: {ansible_connection: ansible.windows.psrp, ansible_port: 5985}
    b: {ansible_connection: ansible.builtin.winrm, ansible_winrm_transport: [ntlm, kerberos]}
    c: {ansible_port: 5985, tls: true}
""")])
    a, b, c = (inv.hosts[n].connection for n in "abc")
    assert (a.transport, a.port, a.tls) == ("psrp", 5985, False)   # 5985 means HTTP, as Ansible
    assert (b.transport, b.auth, b.port, b.tls) == ("winrm", "ntlm", 5986, True)
    assert (c.port, c.tls) == (5985, True)                         # an explicit tls wins


def test_secret_names_include_pass_words() -> None:
    for name in ("ansible_become_pass", "ansible_ssh_pass", "become_pass", "vault_pass_file",
                 "ansible_password", "ansible_winrm_password", "cs_passphrase",
                 "share_password", "client_secret", "db_pwd", "PASS"):
        assert is_secret_name(name), name
    for name in ("compass", "bypass_proxy", "passive_mode", "username", "asr_installer_share",
                 "cs_endpoint", "site"):
        assert not is_secret_name(name), name


def test_mask_secrets_walks_mappings_and_lists() -> None:
    value = {"a": [{"token_secret": ["x", {"deep": "y"}]}, Secret("z", source="env Z")],
             "user": {"password": None, "pass": True, "name": "u"}}
    assert mask_secrets(value) == {
        "a": [{"token_secret": [MASK, {"deep": MASK}]}, f"{MASK} (env Z)"],
        "user": {"password": None, "pass": True, "name": "u"},
    }
