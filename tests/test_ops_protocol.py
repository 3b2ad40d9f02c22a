"""The op protocol on the controller side: encoding, answer decoding, schemas, argv quoting."""

from __future__ import annotations

import base64
import json
import random

import pytest
from kit import LabContext

from pushinstall.errors import RemoteOpFailed
from pushinstall.lab import LabHost
from pushinstall.remote import ops
from pushinstall.secret import MASK, Redactor, Secret

# ---------------------------------------------------------------- encoding


def test_request_round_trips_and_is_quote_free() -> None:
    nasty = "'; Remove-Item C:\\ -Recurse # \"$(evil)\" `n ü"
    req = ops.request("script", source="Write-Output $Parameters.x", parameters={"x": nasty})
    encoded = ops.encode_request(req)
    assert "'" not in encoded and '"' not in encoded and "$" not in encoded
    assert ops.decode_request(encoded) == req
    line = ops.invocation(req)
    assert line == f"Invoke-PushinstallOp -Request '{encoded}'"
    assert nasty not in line


def test_packed_requests_are_gzip_only_where_that_pays() -> None:
    small = ops.request("facts", queries=[{"id": "os", "kind": "os"}])
    assert ops.encode_request(small, pack=True) == ops.encode_request(small)
    gather = ops.request("facts", queries=[{"id": f"r{i}", "kind": "registry",
                                            "key": f"HKLM:\\SOFTWARE\\Vendor\\Key{i}"}
                                           for i in range(20)])
    packed = ops.encode_request(gather, pack=True)
    assert len(packed) < len(ops.encode_request(gather)) / 2
    assert ops.decode_request(packed) == gather
    chunk = ops.request("file_chunk", temp_path="C:\\x.pushinstall-part", offset=0,
                        data=base64.b64encode(random.randbytes(80_000)).decode())
    assert ops.encode_request(chunk, pack=True) == ops.encode_request(chunk)  # not worth it
    with pytest.raises(ValueError, match="does not expand"):
        ops.decode_request(base64.b64encode(b"\x1f\x8b broken").decode())


def test_decode_request_fills_missing_args_and_rejects_non_requests() -> None:
    bare = base64.b64encode(b'{"op":"os"}').decode()
    assert ops.decode_request(bare) == {"op": "os", "args": {}}
    with pytest.raises(ValueError):
        ops.decode_request(base64.b64encode(b"[1,2]").decode())
    with pytest.raises(ValueError):
        ops.decode_request("not base64!")


def test_answer_found_amid_noise_and_non_ascii_survives() -> None:
    answer = ops.ok({"caption": "Microsoft Windows Server 2019 Datacenter — Ünïcode"})
    output = "\r\n".join(
        [
            "WARNING: something chatty",
            "#< CLIXML",
            "  " + ops.encode_answer(answer) + "  ",
            "trailing noise",
        ]
    )
    assert ops.decode_answer(output) == answer
    assert ops.result_of(answer) == answer["result"]


def test_first_answer_line_wins() -> None:
    first, second = ops.ok(1), ops.ok(2)
    output = ops.encode_answer(first) + "\n" + ops.encode_answer(second)
    assert ops.decode_answer(output)["result"] == 1


def test_missing_answer_quotes_first_lines_with_secrets_masked() -> None:
    redactor = Redactor()
    redactor.add(Secret("S3cretPass!"))
    output = "\n".join(
        [
            "The term 'Invoke-PushinstallOp' is not recognized",
            "",
            "password was S3cretPass! oops",
            "line 3",
            "line 4",
            "line 5",
            "line 6 is not quoted",
        ]
    )
    with pytest.raises(RemoteOpFailed) as caught:
        ops.decode_answer(output, host="web01", redactor=redactor)
    error = caught.value
    text = str(error)
    assert error.error_type == "NoAnswer"
    assert error.host == "web01"
    assert "S3cretPass!" not in text
    assert MASK in text
    assert "not recognized" in text and "line 5" in text
    assert "line 6" not in text


@pytest.mark.parametrize(
    "line",
    [
        ops.SENTINEL + "%%%not-base64%%%",
        ops.SENTINEL + base64.b64encode(b"{not json").decode(),
        ops.SENTINEL + base64.b64encode(b'{"result": 1}').decode(),
        ops.SENTINEL + base64.b64encode(b"[true]").decode(),
    ],
)
def test_malformed_answer_is_remote_op_failed(line: str) -> None:
    with pytest.raises(RemoteOpFailed) as caught:
        ops.decode_answer("noise\n" + line)
    assert caught.value.error_type == "NoAnswer"
    assert "noise" in str(caught.value)


def test_empty_output_says_so() -> None:
    with pytest.raises(RemoteOpFailed, match="no output"):
        ops.decode_answer("")


def test_error_answer_raises_with_its_type() -> None:
    with pytest.raises(RemoteOpFailed) as caught:
        ops.result_of(ops.error("HashMismatch", "sha256 differs"), host="db1")
    assert caught.value.error_type == "HashMismatch"
    assert "db1: sha256 differs" in str(caught.value)


def test_batch_carries_requests_in_order() -> None:
    inner = [ops.request("facts", queries=[{"id": "os", "kind": "os"}]), ops.request("reboot")]
    req = ops.batch(inner)
    assert req == {"op": "batch", "args": {"requests": inner}}
    assert json.loads(base64.b64decode(ops.encode_request(req)))["args"]["requests"] == inner
    ops.validate_request(req)


def test_is_idempotent() -> None:
    facts = ops.request("facts", queries=[])
    assert ops.is_idempotent(facts)
    assert ops.is_idempotent(ops.request("file_chunk", temp_path="t", offset=0, data=""))
    assert not ops.is_idempotent(ops.request("run_process", path="x.exe"))
    assert not ops.is_idempotent(ops.request("reboot"))
    assert ops.is_idempotent(ops.batch([facts, ops.request("remove_file", path="p")]))
    assert not ops.is_idempotent(ops.batch([facts, ops.request("set_service", name="s")]))
    assert set(ops.OP_NAMES) >= ops.IDEMPOTENT_OPS


def test_agent_source_is_packaged() -> None:
    assert ops.agent_path().is_file()
    assert "function Invoke-PushinstallOp" in ops.agent_source()


# ---------------------------------------------------------------- schemas

HASH = "ab" * 32


def test_schemas_cover_exactly_the_ops_and_fact_kinds() -> None:
    assert set(ops.OP_SCHEMAS) == set(ops.OP_NAMES)
    assert set(ops.FACT_SCHEMAS) == set(ops.FACT_KINDS)


VALID = [
    ops.request("ensure_directory", path="C:\\Temp\\asr"),
    ops.request(
        "download",
        source="\\\\srv\\share\\ua.exe",
        destination="C:\\Temp\\ua.exe",
        sha256=HASH,
        credential={"username": "CORP\\svc", "password": "pw"},
        timeout_s=600,
    ),
    ops.request("file_begin", destination="C:\\t\\a.bin", size=0, sha256=HASH),
    ops.request("file_chunk", temp_path="C:\\t\\a.part", offset=10, data="AAEC"),
    ops.request("file_end", temp_path="C:\\t\\a.part", destination="C:\\t\\a.bin", sha256=HASH),
    ops.request("expand_archive", path="C:\\t\\a.zip", destination="C:\\t\\a"),
    ops.request(
        "run_process",
        path="C:\\t\\UnifiedAgent.exe",
        arguments=["/Role", "MS", "/CSEndpoint", "10.0.0.115"],
        working_directory="C:\\t",
        timeout_s=3600,
        tail_lines=50,
    ),
    ops.request("write_secret", path="C:\\t\\p.txt", content="secret"),
    ops.request("remove_file", path="C:\\t\\p.txt"),
    ops.request("set_service", name="svagents", state="running", start_mode="AutomaticDelayed"),
    ops.request("set_registry", key="HKLM:\\SOFTWARE\\X", name="N", value=4294967295, type="DWord"),
    ops.request("set_registry", key="HKLM:\\SOFTWARE\\X", name="", value=["a", "b"],
                type="MultiString", view="32"),
    ops.request("set_registry", key="HKLM:\\SOFTWARE\\X", name="B", value="AAE=", type="Binary"),
    ops.request("reboot"),
    ops.request("reboot", delay_s=0, reason="pushinstall: ASR"),
    ops.request("script", source="$Parameters.a", parameters={"a": [1, {"b": None}]}),
    ops.request(
        "facts",
        queries=[
            {"id": "r", "kind": "registry", "key": "HKLM:\\SOFTWARE\\X", "name": "", "view": "32"},
            {"id": "f", "kind": "file", "path": "C:\\x", "hash": False},
            {"id": "s", "kind": "service", "name": "svagents"},
            {"id": "p", "kind": "product", "name": "Azure Site Recovery Mobility Service"},
            {"id": "g", "kind": "product", "product_id": "{275197FC-14FD-4560-A5EB-38217F80CBD1}"},
            {"id": "pr", "kind": "pending_reboot"},
            {"id": "o", "kind": "os"},
            {"id": "d", "kind": "disk", "drive": "C:"},
            {"id": "t", "kind": "tcp", "host": "cs.example", "port": 443, "timeout_ms": 500},
        ],
    ),
]


@pytest.mark.parametrize("req", VALID, ids=lambda r: r["op"])
def test_valid_requests_pass(req: dict) -> None:
    ops.validate_request(req)
    ops.validate_request(ops.batch([req]))


INVALID = [
    ("not a dict", ["x"], "object with a string 'op'"),
    ("unknown op", {"op": "format_disk", "args": {}}, "unknown op 'format_disk'"),
    ("extra key", {"op": "os", "args": {}, "x": 1}, "only 'op' and 'args'"),
    ("args not dict", {"op": "reboot", "args": []}, "'args' must be an object"),
    ("missing", ops.request("ensure_directory"), "missing required argument 'path'"),
    ("unknown arg", ops.request("remove_file", path="p", force=True), "unknown argument 'force'"),
    ("type", ops.request("remove_file", path=3), "'path' must be string"),
    ("bool is not int", ops.request("reboot", delay_s=True), "'delay_s' must be integer"),
    ("minimum", ops.request("file_chunk", temp_path="t", offset=-1, data=""), "at least 0"),
    ("hash", ops.request("file_end", temp_path="t", destination="d", sha256="xyz"),
     "'sha256' must be sha256"),
    ("base64", ops.request("file_chunk", temp_path="t", offset=0, data="**"), "must be base64"),
    ("argv items", ops.request("run_process", path="p", arguments=["a", 1]),
     "'arguments' must be string_list"),
    ("choice", ops.request("set_service", name="s", state="paused"),
     "'state' must be one of running, stopped"),
    ("credential", ops.request("download", source="s", destination="d",
                               credential={"username": "u"}), "must be credential"),
    ("dword range", ops.request("set_registry", key="k", name="n", value=2**32, type="DWord"),
     "DWord value must be an integer"),
    ("multistring", ops.request("set_registry", key="k", name="n", value="a", type="MultiString"),
     "list of strings"),
    ("nested", ops.batch([ops.request("os")]), "requests[0]: unknown op 'os'"),
    ("query kind", ops.request("facts", queries=[{"id": "a", "kind": "cpu"}]), "'kind' must be"),
    ("query id", ops.request("facts", queries=[{"kind": "os"}]), "'id' must be"),
    ("dup id", ops.request("facts", queries=[{"id": "a", "kind": "os"}] * 2), "duplicate id"),
    ("query arg", ops.request("facts", queries=[{"id": "a", "kind": "tcp", "host": "h"}]),
     "missing required argument 'port'"),
    ("product", ops.request("facts", queries=[{"id": "a", "kind": "product"}]),
     "needs 'product_id' or 'name'"),
    ("drive", ops.request("facts", queries=[{"id": "a", "kind": "disk", "drive": "C:\\x"}]),
     "drive letter"),
    ("port", ops.request("facts", queries=[{"id": "a", "kind": "tcp", "host": "h", "port": 0}]),
     "at least 1"),
]


@pytest.mark.parametrize(("req", "message"), [(r, m) for _, r, m in INVALID],
                         ids=[name for name, _, _ in INVALID])
def test_invalid_requests_say_what_is_wrong(req: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        ops.validate_request(req)


def test_validation_errors_never_quote_values() -> None:
    secret = "hunter2-Passphrase"
    bad = [
        ops.request("write_secret", path="p", content=[secret]),
        ops.request("download", source="s", destination="d",
                    credential={"username": "u", "password": secret, "domain": "x"}),
        ops.request("set_registry", key="k", name="n", value=secret, type="DWord"),
        ops.request("script", source="x", parameters=secret),
    ]
    for req in bad:
        with pytest.raises(ValueError) as caught:
            ops.validate_request(req)
        assert secret not in str(caught.value)


# ---------------------------------------------------------------- argv quoting

ARGV_TABLE = [
    ([], ""),
    (["plain"], "plain"),
    ([""], '""'),
    (["a b"], '"a b"'),
    (["tab\there"], '"tab\there"'),
    (['say "hi"'], '"say \\"hi\\""'),
    (["C:\\Program Files\\x\\"], '"C:\\Program Files\\x\\\\"'),
    (["C:\\no\\space\\"], "C:\\no\\space\\"),
    (['back\\"quote'], '"back\\\\\\"quote"'),
    (["\\\\server\\share"], "\\\\server\\share"),
    (["/CSEndpoint", "10.0.0.115", "/PassphraseFilePath", "C:\\Temp\\p p.txt"],
     '/CSEndpoint 10.0.0.115 /PassphraseFilePath "C:\\Temp\\p p.txt"'),
    (["'; Remove-Item C:\\ -Recurse #"], "\"'; Remove-Item C:\\ -Recurse #\""),
    (["a\\\\b"], "a\\\\b"),
    (["\\"], "\\"),
    (["\\ "], '"\\ "'),
    (['"'], '"\\""'),
    (["line\nbreak"], '"line\nbreak"'),
]


@pytest.mark.parametrize(("args", "line"), ARGV_TABLE)
def test_argv_quote_table_and_round_trip(args: list[str], line: str) -> None:
    assert ops.windows_argv_quote(args) == line
    assert ops.windows_argv_split(line) == args


@pytest.mark.parametrize(
    ("line", "args"),
    [
        # Microsoft's documented examples ("Parsing C++ command-line arguments")
        ('"abc" d e', ["abc", "d", "e"]),
        ('a\\\\\\b d"e f"g h', ["a\\\\\\b", "de fg", "h"]),
        ('a\\\\\\"b c d', ['a\\"b', "c", "d"]),
        ('a\\\\\\\\"b c" d e', ["a\\\\b c", "d", "e"]),
        ('a"b"" c d', ['ab" c d']),
        ("  lead   and\ttrail  ", ["lead", "and", "trail"]),
        ('"unterminated arg', ["unterminated arg"]),
    ],
)
def test_argv_split_follows_the_c_runtime(line: str, args: list[str]) -> None:
    assert ops.windows_argv_split(line) == args


def test_argv_round_trip_property() -> None:
    """Property test without extra dependencies: 3000 random argument lists drawn from the
    characters that matter (quotes, backslashes, whitespace) plus ordinary and non-ASCII ones;
    the seed is fixed so a failure reproduces."""
    rng = random.Random(20261126)
    alphabet = ['"', "\\", " ", "\t", "\n", "\v", "a", "Z", "=", "'", "é", "/", ":", "%"]
    for _ in range(3000):
        args = [
            "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
            for _ in range(rng.randint(0, 5))
        ]
        line = ops.windows_argv_quote(args)
        assert ops.windows_argv_split(line) == args, (args, line)


def test_command_line_puts_the_path_in_quotes() -> None:
    path = "C:\\Program Files (x86)\\Microsoft Azure Site Recovery\\UnifiedAgent.exe"
    args = ["/Role", "MS", "/InstallLocation", "C:\\Program Files (x86)\\ASR\\"]
    line = ops.windows_command_line(path, args)
    assert line.startswith(f'"{path}" /Role MS')
    assert ops.windows_argv_split(line) == [path, *args]
    assert ops.windows_command_line("msiexec.exe", []) == '"msiexec.exe"'


def test_a_request_the_schema_refuses_is_never_sent(host: LabHost) -> None:
    ctx = LabContext(host)
    with pytest.raises(ValueError, match="bogus"):
        ctx.call("ensure_directory", path="C:\\x", bogus=1)
    assert host.op_log == []
