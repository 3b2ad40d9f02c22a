"""Playbook loading, settings, extra vars, and per-host rendering (templating and secrets)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pushinstall.errors import InputError
from pushinstall.inventory import load_inventory
from pushinstall.model import Host, Step
from pushinstall.playbook import host_variables, load_playbook, parse_extra_vars, render_step
from pushinstall.playbook.templating import TemplatedSecret
from pushinstall.secret import MASK, Secret

ROOT = Path(__file__).parent.parent
ASR = str(ROOT / "playbooks" / "asr-mobility.yml")


def write(tmp_path: Path, text: str, name: str = "play.yml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def one_step(tmp_path: Path, step: str, extra: str = "") -> Step:
    text = f"name: t\nhosts: all\n{extra}steps:\n  - name: s\n{step}"
    return load_playbook(write(tmp_path, text)).steps[0]


def test_the_shipped_playbook_loads_with_its_settings_and_steps() -> None:
    playbook = load_playbook(ASR)
    assert playbook.hosts == "all" and len(playbook.steps) == 15
    assert playbook.settings.reboot.mode == "if_needed"
    assert playbook.settings.reboot.after_reboot == "continue"
    assert playbook.settings.max_fail_percentage == 20.0
    types = [s.type for s in playbook.steps]
    assert types[:6] == ["pending_reboot", "preflight", "directory", "file", "command",
                         "package"]
    assert types.count("service") == 3
    assert playbook.hosts_location is not None and playbook.hosts_location.line == 12


def test_the_shipped_playbook_renders_for_a_lab_host_without_reading_secrets() -> None:
    inventory = load_inventory([str(ROOT / "inventories" / "lab.yml")])
    playbook = load_playbook(ASR)
    host = inventory.hosts["lab-web01"]
    variables = host_variables(host, playbook, {})
    steps = {s.name: render_step(s, variables) for s in playbook.steps}
    bundle = steps["Mobility service bundle"]
    assert bundle["src"] == "\\\\labshare\\asr\\Microsoft-ASR_UA_9.62.0.0_Windows_GA_" \
        "20240701_Release.exe"
    assert bundle["dest"].startswith("C:\\Temp\\ASR\\Microsoft-ASR_UA_9.62")
    register = steps["Register with the configuration server"]
    assert register["arguments"] == ["/CSEndPoint", "10.0.0.115", "/PassphraseFilePath",
                                     "C:\\ProgramData\\pushinstall\\passphrase.txt"]
    content = register["secret_file"]["content"]
    assert content is host.vars["asr_passphrase"]          # the inventory's own Secret
    assert register["unless"]["ini"]["path"].endswith("\\agent\\Application Data\\etc"
                                                      "\\drscout.conf")
    assert steps["Install Mobility service"]["return_codes"] == {
        0: "ok", 3010: "reboot", 1641: "reboot", 98: "reboot", 97: "reboot"}


def test_settings_parse_every_documented_key(tmp_path: Path) -> None:
    text = ("name: t\nhosts: all\nsettings:\n  forks: 8\n  serial: [1, '25%']\n"
            "  max_fail_percentage: 10\n  any_errors_fatal: true\n  step_timeout: 60\n"
            "  host_timeout: 120\n  connect_timeout: 5\n  retries: 0\n"
            "  reboot: {mode: never, after_reboot: stop, timeout: 90}\n"
            "steps:\n  - {name: d, directory: {path: x}}\n")
    settings = load_playbook(write(tmp_path, text)).settings
    assert (settings.forks, settings.serial, settings.max_fail_percentage) == (8, [1, "25%"], 10)
    assert settings.any_errors_fatal and settings.retries == 0
    assert (settings.step_timeout, settings.host_timeout, settings.connect_timeout) == (60, 120, 5)
    assert (settings.reboot.mode, settings.reboot.after_reboot, settings.reboot.timeout) == \
        ("never", "stop", 90)


def test_step_keys_load(tmp_path: Path) -> None:
    step = one_step(tmp_path, "    directory: {path: x}\n    when: site == 'ams'\n"
                              "    timeout: 30\n    retries: 1\n    no_log: true\n")
    assert (step.when, step.timeout, step.retries, step.no_log) == ("site == 'ams'", 30, 1, True)
    assert step.when_location is not None and step.when_location.line == 6


def test_host_variable_precedence() -> None:
    playbook = load_playbook(ASR)
    host = Host("h1", groups=["g"], vars={"asr_version": "9.60.0.0", "site": "ams",
                                           "cs_endpoint": "10.0.0.1"})
    variables = host_variables(host, playbook, {"site": "dub"})
    assert variables["asr_version"] == "9.60.0.0"          # host beats playbook
    assert variables["site"] == "dub"                       # extra vars beat host
    assert variables["staging_dir"] == "C:\\Temp\\ASR"      # playbook vars fill in
    assert variables["inventory_hostname"] == "h1" and variables["group_names"] == ["g"]


def test_a_whole_template_keeps_its_native_type_and_mixed_text_renders(tmp_path: Path) -> None:
    step = one_step(tmp_path, "    reboot: {timeout: '{{ wait }}', reason: 'for {{ why }}'}\n")
    rendered = render_step(step, {"wait": 600, "why": "upgrade", "inventory_hostname": "h"})
    assert rendered == {"timeout": 600, "reason": "for upgrade"}


def test_vars_that_hold_templates_resolve_in_order(tmp_path: Path) -> None:
    step = one_step(tmp_path, "    directory: {path: '{{ deep }}'}\n",
                    "vars:\n  deep: '{{ base }}\\x'\n  base: '{{ root }}\\y'\n  root: 'C:'\n")
    playbook_vars = load_playbook(step.location.path).vars  # type: ignore[union-attr]
    variables = host_variables(Host("h"), load_playbook(step.location.path), {})
    assert render_step(step, variables)["path"] == "C:\\y\\x"
    assert variables["deep"] == "C:\\y\\x" and playbook_vars["deep"] == "{{ base }}\\x"


def test_default_filter_covers_an_undefined_variable(tmp_path: Path) -> None:
    step = one_step(tmp_path, "    directory: {path: \"{{ dir | default('C:/T') }}\"}\n")
    assert render_step(step, {})["path"] == "C:/T"


def test_undefined_variable_is_named_at_its_string(tmp_path: Path) -> None:
    step = one_step(tmp_path, "    directory: {path: '{{ stage }}'}\n",
                    "vars:\n  stage: '{{ missing_root }}\\ASR'\n")
    with pytest.raises(InputError) as caught:
        render_step(step, {"stage": "{{ missing_root }}\\ASR"})
    assert str(caught.value) == (
        f"{step.location.path}:7:23: undefined variable 'missing_root' in "  # type: ignore[union-attr]
        "'{{ missing_root }}\\ASR' (used by variable 'stage') "
        "(a variable from the inventory, the playbook's vars or -e)")


def test_secrets_stay_secret_through_templates(tmp_path: Path) -> None:
    step = one_step(tmp_path, "    command:\n      path: x.exe\n      secret_file:\n"
                              "        path: p.txt\n        content: 'key={{ pass }}'\n")
    secret = Secret("s3cret-value")
    rendered = render_step(step, {"pass": secret})
    content = rendered["secret_file"]["content"]
    assert isinstance(content, TemplatedSecret)
    assert str(content) == MASK and "s3cret" not in repr(rendered)
    assert content.reveal() == "key=s3cret-value"


def test_a_plain_secret_argument_is_wrapped(tmp_path: Path) -> None:
    step = one_step(tmp_path, "    file:\n      src: '\\\\\\\\s\\\\x'\n      dest: y\n"
                              "      share_credential: {username: u, password: '{{ pw }}'}\n")
    rendered = render_step(step, {"pw": "plain-text-password"})
    password = rendered["share_credential"]["password"]
    assert isinstance(password, Secret) and password.reveal() == "plain-text-password"


def test_an_unset_env_secret_is_never_read_while_rendering(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           ) -> None:
    monkeypatch.delenv("PUSHINSTALL_TEST_UNSET", raising=False)
    inventory = write(tmp_path, "all:\n  vars:\n    phrase: {env: PUSHINSTALL_TEST_UNSET}\n"
                                "  hosts:\n    h1:\n", "inv.yml")
    host = load_inventory([inventory]).hosts["h1"]
    step = one_step(tmp_path, "    command:\n      path: x.exe\n      secret_file:\n"
                              "        path: p.txt\n        content: 'x{{ phrase }}'\n")
    rendered = render_step(step, host_variables(host, load_playbook(step.location.path), {}))  # type: ignore[union-attr]
    with pytest.raises(InputError, match="PUSHINSTALL_TEST_UNSET"):
        rendered["secret_file"]["content"].reveal()


def test_a_controller_file_is_found_next_to_the_playbook(tmp_path: Path) -> None:
    (tmp_path / "ua.exe").write_bytes(b"binary")
    step = one_step(tmp_path, "    file: {src: ua.exe, dest: 'C:\\x.exe'}\n")
    assert render_step(step, {})["src"] == str(tmp_path / "ua.exe")


def test_extra_vars_forms_and_typing(tmp_path: Path) -> None:
    vars_file = write(tmp_path, "site: ams\nforks: 5\n", "vars.yml")
    parsed = parse_extra_vars([
        "count=3 flag=true ratio=0.5 text=hello",
        "share=\\\\srv\\asr dir='C:\\Program Files\\x'",
        '{"json": [1, 2]}',
        f"@{vars_file}",
        "text=later",
        "asr_passphrase=p@ss",
    ])
    assert parsed["count"] == 3 and parsed["flag"] is True and parsed["ratio"] == 0.5
    assert parsed["share"] == "\\\\srv\\asr" and parsed["dir"] == "C:\\Program Files\\x"
    assert parsed["json"] == [1, 2] and parsed["site"] == "ams" and parsed["forks"] == 5
    assert parsed["text"] == "later"
    assert isinstance(parsed["asr_passphrase"], Secret)
    assert parsed["asr_passphrase"].reveal() == "p@ss"


def test_a_templated_hosts_pattern_uses_extra_vars(tmp_path: Path) -> None:
    path = write(tmp_path, "name: t\nhosts: '{{ target | default(\"all\") }}'\n"
                           "steps:\n  - {name: d, directory: {path: x}}\n")
    assert load_playbook(path, {"target": "lab_ams"}).hosts == "lab_ams"
    assert load_playbook(path).hosts == "all"


def test_the_render_memo_tells_apart_what_renders_differently(tmp_path: Path) -> None:
    """A step's rendered args are shared by hosts whose variables have the same values; the
    key keeps True apart from 1 and -0.0 from 0.0, and never shares across other values."""
    step = one_step(tmp_path, "    directory: {path: 'C:/{{ v }}'}\n")
    seen = [render_step(step, {"v": v})["path"] for v in (1, True, 0.0, -0.0, "1", 1)]
    assert seen == ["C:/1", "C:/True", "C:/0.0", "C:/-0.0", "C:/1", "C:/1"]
    assert render_step(step, {"v": 1}) is render_step(step, {"v": 1})   # shared, not re-made


def test_the_render_memo_keeps_no_per_host_secret(tmp_path: Path) -> None:
    """A variable that is a template over a secret is a new TemplatedSecret per host: such a
    step is not memoized (a memo entry per host would keep each host's revealed value)."""
    step = one_step(tmp_path, "    command: {path: 'C:/x.exe', arguments: ['/q'], "
                              "secret_file: {content: '{{ cred }}', path: 'C:/p.txt'}}\n")
    password = Secret("pw-for-all")
    for host in ("h1", "h2", "h3"):
        variables = {"cred": TemplatedSecret("{{ host }}-{{ pw }}", {"host": host,
                                                                      "pw": password})}
        render_step(step, variables)
    assert step.rendered == {}
    same = {"cred": password}
    assert render_step(step, same) is render_step(step, dict(same))   # one object: memoized
