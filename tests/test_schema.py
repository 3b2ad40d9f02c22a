"""Argument schemas: the checks every resource type's `ARGS` gets, on located YAML."""

from __future__ import annotations

import pytest

from pushinstall.argspec import Arg
from pushinstall.errors import InputError
from pushinstall.resources import RESOURCE_TYPES, validate_args
from pushinstall.resources.exit_codes import ASR_UNIFIED_AGENT, MSIEXEC, message_for
from pushinstall.resources.programs import RUN_ARGS
from pushinstall.resources.schema import check_args, markdown_table, secret_fields, with_defaults
from pushinstall.secret import Secret
from pushinstall.source import load_yaml_text


def args(text: str) -> object:
    return load_yaml_text(text, "step.yml")


def error_of(type_name: str, text: str) -> str:
    with pytest.raises(InputError) as caught:
        validate_args(type_name, args(text))
    return str(caught.value)


def test_every_type_of_the_contract_is_registered_with_a_schema() -> None:
    assert list(RESOURCE_TYPES) == ["pending_reboot", "preflight", "directory", "file",
                                    "archive", "package", "service", "registry", "command",
                                    "script", "reboot"]
    for module in RESOURCE_TYPES.values():
        assert module.ARGS and all(isinstance(a, Arg) for a in module.ARGS)
        assert module.__doc__


@pytest.mark.parametrize(("type_name", "text"), [
    ("pending_reboot", "{}"),
    ("pending_reboot", "{on_pending: warn, ignore: [windows_update, computer_rename]}"),
    ("directory", "{path: 'C:\\Temp'}"),
    ("file", "{src: 'https://x/y.msi', dest: 'C:\\y.msi', sha256: '" + "a" * 64 + "'}"),
    ("file", "{src: '\\\\s\\x', dest: 'C:\\x', share_credential: {username: u, password: p}}"),
    ("archive", "{src: 'C:\\a.zip', dest: 'C:\\a'}"),
    ("package", "{path: msiexec.exe, arguments: [/i, x.msi], name: Agent, "
                "return_codes: {0: ok, 1603: failed}, messages: {1603: boom}}"),
    ("package", "{path: x.exe, creates: 'C:\\x', secret_file: {path: p, content: c}}"),
    ("service", "{name: svagents, state: stopped, start_mode: delayed, ensure: absent-ok}"),
    ("registry", "{key: 'HKLM:\\SOFTWARE\\X', name: V, value: 1, type: DWord, view: '32'}"),
    ("command", "{path: x.exe, unless: {registry: {key: 'HKLM:\\X', name: S}, equals: ok}}"),
    ("command", "{path: x.exe, unless: {product: {product_id: '{X}'}}}"),
    ("script", "{test: '$true', set: 'Write-Output 1', parameters: {a: 1}}"),
    ("reboot", "{reason: upgrade, timeout: 600}"),
    ("service", "{name: '{{ svc }}', state: '{{ wanted }}'}"),
    ("file", "{src: x, dest: y, force: '{{ force_copy }}'}"),
])
def test_valid_arguments_pass(type_name: str, text: str) -> None:
    validate_args(type_name, args(text))


@pytest.mark.parametrize(("type_name", "text", "expected"), [
    ("service", "{name: x, stat: running}",
     "step.yml:1:11: unknown argument 'stat' for 'service'; did you mean 'state'? "
     "(one of: name, state, start_mode, ensure)"),
    ("service", "{name: x, start_mode: automatic}",
     "step.yml:1:23: 'start_mode' of 'service' is 'automatic'; did you mean 'auto'? "
     "(one of: auto, delayed, manual, disabled)"),
    ("reboot", "{timeout: soon}",
     "step.yml:1:11: 'timeout' of 'reboot' is a string (a whole number)"),
    ("reboot", "{timeout: true}",
     "step.yml:1:11: 'timeout' of 'reboot' is a boolean (a whole number)"),
    ("package", "{path: x, name: y, arguments: [/a, [nested]]}",
     "step.yml:1:31: 'arguments' of 'package' is a list (a list of strings)"),
    ("package", "{path: x, name: y, return_codes: {ok: 0}}",
     "step.yml:1:35: exit code 'ok' in 'return_codes' of 'package' is not a number "
     "(a whole number such as 3010)"),
    ("package", "{path: x, name: y, messages: [a]}",
     "step.yml:1:30: 'messages' is a list (a table name or a mapping of exit codes to text)"),
    ("file", "{src: x, dest: y, share_credential: {username: u}}",
     "step.yml:1:37: missing required argument 'password' for 'share_credential' of 'file' "
     "(a string)"),
    ("command", "{path: x, unless: {}}",
     "step.yml:1:19: expected exactly one of registry, file, service, product, ini; found none "
     "(one condition kind)"),
    ("directory", "{path: }", "step.yml:1:7: 'path' of 'directory' is empty (a string)"),
    ("script", "{test: x}",
     "step.yml:1:1: missing required argument 'set' for 'script' (a string)"),
])
def test_invalid_arguments_point_at_the_fault(type_name: str, text: str, expected: str) -> None:
    assert error_of(type_name, text) == expected


def test_defaults_fill_in_and_secret_arguments_become_secrets() -> None:
    module = RESOURCE_TYPES["command"]
    filled = with_defaults(module.ARGS, {"path": "x", "secret_file": {"path": "p",
                                                                      "content": "pass"}})
    assert filled["return_codes"] == {0: "ok", 3010: "reboot"} and filled["arguments"] == []
    wrapped = secret_fields(module.ARGS, filled)
    assert isinstance(wrapped["secret_file"]["content"], Secret)
    assert wrapped["secret_file"]["content"].reveal() == "pass"
    assert "pass" not in repr(wrapped)
    credential = secret_fields(RESOURCE_TYPES["file"].ARGS,
                               {"share_credential": {"username": "u", "password": "pw"}})
    assert isinstance(credential["share_credential"]["password"], Secret)
    assert credential["share_credential"]["username"] == "u"


def test_exit_code_tables_cover_the_documented_codes() -> None:
    for code in (0, 1, 2, 13, 14, 15, 17, 19, 41, 42, 62, 97, 98, 99, 1641, 3010):
        assert ASR_UNIFIED_AGENT[code]
    for code in (1603, 1618, 1619, 1620, 1638, 1641, 3010):
        assert MSIEXEC[code]
    assert message_for(14, "asr_unified_agent") == \
        "invalid passphrase or configuration server endpoint"
    assert message_for(7, {7: "custom"}) == "custom"
    assert message_for(5, "msiexec") == ""


def test_markdown_table_lists_every_argument() -> None:
    table = markdown_table(RESOURCE_TYPES["file"].ARGS)
    for name in ("dest", "src", "sha256", "share_credential", "force"):
        assert f"| `{name}` |" in table
    assert "`password` (required) (secret)" in table


@pytest.mark.parametrize(("args", "message"), [
    ({"path": "x.exe", "timeout": -5}, "'timeout' of 'command' is -5"),
    ({"path": "x.exe", "timeout": 0}, "'timeout' of 'command' is 0"),
    ({"path": 5}, "'path' of 'command' is a number"),
    ({"path": ""}, "'path' of 'command' is empty"),
    ({"path": "x.exe", "working_directory": 7}, "'working_directory' of 'command' is a number"),
    ({"path": "x.exe", "creates": ["a"]}, "'creates' of 'command' is a list"),
    ({"path": "x.exe", "secret_file": {"path": 1, "content": "s"}},
     "'path' of 'secret_file' of 'command' is a number"),
])
def test_run_arguments_are_typed(args: dict[str, object], message: str) -> None:
    with pytest.raises(InputError) as error:
        check_args(RUN_ARGS, args, "'command'")
    assert error.value.message == message


def test_good_run_arguments_still_pass() -> None:
    check_args(RUN_ARGS, {"path": "x.exe", "timeout": 1, "working_directory": "C:\\",
                          "creates": "{{ marker }}", "arguments": ["/q", 5]}, "'command'")
