"""What is particular to the winrm transport, against the lab's WinRS shell on real loopback
sockets with the real pywinrm (the scenarios it shares with psrp are parametrized in
test_transport_psrp.py). Mocked: nothing on the wire; the lab host stands in for Windows."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest
import requests
from kit import OS_FACTS, Wire
from winrm.exceptions import WinRMOperationTimeoutError

from pushinstall.errors import TransportError, TransportTimeout
from pushinstall.lab.connect import make_transport
from pushinstall.remote import bootstrap, ops
from pushinstall.remote.stdin import session_script
from pushinstall.transports.winrm import STDIN_BLOCK, WinRMTransport, strip_clixml

CMD_LIMIT = 8191  # characters on a cmd.exe command line


def _open(wire: Wire, name: str, **settings: object) -> WinRMTransport:
    transport = WinRMTransport(wire.host(name, transport="winrm", **settings))  # type: ignore[arg-type]
    transport.open()
    return transport


def test_a_script_longer_than_a_command_line_works(wire: Wire) -> None:
    model = wire.serve("h1")
    source = "\n".join([f"# filler line {i:05d} " + "x" * 60 for i in range(200)]
                       + ["Write-Output 'made it through stdin'"])
    assert len(source) > CMD_LIMIT
    transport = _open(wire, "h1")
    result = ops.result_of(transport.call(ops.request("script", source=source)))
    transport.close()
    assert result["output"] == ["made it through stdin"] and result["success"] is True
    assert model.op_log[-1] == "script"


def test_a_large_stdin_goes_in_several_sends_below_the_envelope_size(wire: Wire) -> None:
    wire.serve("h1")
    transport = _open(wire, "h1")
    before = wire.endpoint.counters("h1").requests
    data = "A" * (3 * STDIN_BLOCK)  # base64 text: the request line is ~4 blocks long
    request = ops.request("file_begin", destination="C:\\Temp\\x.bin", size=1,
                          sha256="0" * 64)
    begin = ops.result_of(transport.call(request))
    chunk = ops.request("file_chunk", temp_path=begin["temp_path"], offset=0, data=data)
    assert transport.call(chunk)["ok"] is True
    transport.close()
    # Command, >= 4 Sends, Receive, Signal for the chunk call (plus the file_begin call).
    assert wire.endpoint.counters("h1").requests - before >= 4 + 6


def test_negotiate_is_ntlm_for_pywinrm_and_basic_over_https_works(wire: Wire) -> None:
    wire.serve("h1")
    for auth, tls in (("negotiate", False), ("basic", True), ("ntlm", True)):
        transport = _open(wire, "h1", auth=auth, tls=tls)
        assert transport.call(OS_FACTS)["ok"] is True, auth
        transport.close()


def test_clixml_on_stderr_becomes_text() -> None:
    stderr = ('#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/'
              'powershell/2004/04"><S S="Error">Cannot find path &apos;C:\\x&apos;_x000D__x000A_'
              '</S><S S="Error">second line_x000D__x000A_</S></Objs>')
    assert strip_clixml(stderr) == "Cannot find path 'C:\\x'\r\nsecond line\r\n"
    assert strip_clixml("plain text") == "plain text"


def test_errors_on_stderr_are_quoted_when_no_answer_comes(wire: Wire) -> None:
    wire.serve("h1")
    transport = _open(wire, "h1")
    transport._agent = "function Invoke-PushinstallOp { }  # not this version's agent"
    with pytest.raises(Exception, match="not this version's agent"):
        transport.call(OS_FACTS)
    transport.close()


def test_the_factory_puts_a_lab_host_on_the_winrm_wire(monkeypatch: pytest.MonkeyPatch) -> None:
    from pushinstall.model import Connection, Host

    monkeypatch.setenv("PUSHINSTALL_LAB_WIRE", "winrm")
    transport = make_transport(Host("lab-w", connection=Connection(transport="lab")))
    assert isinstance(transport, WinRMTransport)
    transport.open()
    assert transport.call(OS_FACTS)["ok"] is True
    transport.close()
    monkeypatch.setenv("PUSHINSTALL_LAB_WIRE", "0")
    assert type(make_transport(Host("lab-w", connection=Connection(transport="lab")))
                ).__name__ == "LabTransport"


def test_one_agent_process_answers_every_call_of_the_connection(wire: Wire) -> None:
    """The agent goes over once per connection, not once per call."""
    model = wire.serve("h1")
    transport = _open(wire, "h1")
    before = wire.endpoint.counters("h1").bytes_in
    for _ in range(5):
        assert transport.call(OS_FACTS)["ok"] is True
    sent = wire.endpoint.counters("h1").bytes_in - before
    transport.close()
    agent_bytes = len(session_script(with_agent=True))
    # base64 and SOAP add a third, each call a few envelopes; one agent per call was > 5x
    assert agent_bytes < sent < 3 * agent_bytes
    assert model.op_log[-5:] == ["facts"] * 5


def test_after_a_timeout_the_next_call_gets_a_new_process_and_its_own_answer(
        wire: Wire) -> None:
    """The timed-out process may still be running its op: it is ended, never read again."""
    wire.serve("h1", {"installer_seconds": 3})
    transport = _open(wire, "h1", read_timeout=3.0)
    started = time.monotonic()
    with pytest.raises(TransportTimeout, match="within 1 s"):
        transport.call(ops.request("run_process", path="C:\\Windows\\System32\\msiexec.exe",
                                   arguments=["/i", "C:\\Temp\\x.msi", "/qn"]), timeout=1)
    assert time.monotonic() - started < 5
    answer = transport.call(ops.request("facts", queries=[{"id": "d", "kind": "disk",
                                                           "drive": "C:"}]))
    transport.close()
    assert answer["ok"] is True and set(answer["result"]) == {"d"}


def _counting_sends(transport: WinRMTransport) -> list[bytes]:
    """The stdin blocks the transport writes through its pywinrm Protocol (a spy: each still
    goes to the lab endpoint)."""
    protocol = transport._protocol
    assert protocol is not None
    sent: list[bytes] = []
    original = protocol.send_command_input

    def send(shell_id: str, command_id: str, data: bytes, end: bool = False) -> None:
        sent.append(data)
        original(shell_id, command_id, data, end=end)

    protocol.send_command_input = send  # type: ignore[method-assign]
    return sent


def test_a_new_process_gets_a_request_without_secrets_with_its_session_script(
        wire: Wire) -> None:
    """One Send for the script and the first request, as the PSRP bootstrap carries it; the
    answer is read behind the key line, and the next call is one line of its own."""
    model = wire.serve("h1")
    transport = _open(wire, "h1")
    sent = _counting_sends(transport)
    first = transport.call(OS_FACTS)
    assert len(sent) == 1 and sent[0].startswith(session_script(with_agent=True).encode())
    assert first["ok"] is True and model.op_log[-1] == "facts"
    second = transport.call(ops.request("facts", queries=[{"id": "d", "kind": "disk",
                                                           "drive": "C:"}]))
    transport.close()
    assert len(sent) == 2 and not sent[1].startswith(b"$PiOut")
    assert second["ok"] is True and set(second["result"]) == {"d"}


def test_a_first_request_with_a_secret_waits_for_the_key_it_is_sealed_to(wire: Wire) -> None:
    model = wire.serve("h1")
    transport = _open(wire, "h1")
    sent = _counting_sends(transport)
    answer = transport.call(ops.request("write_secret", path="C:\\Temp\\p.txt",
                                        content="hunter2-passphrase"))
    transport.close()
    assert answer["ok"] is True, answer
    assert len(sent) == 2 and b"hunter2" not in sent[1]
    assert model.file_content("C:\\Temp\\p.txt") == b"hunter2-passphrase"


def test_closing_deletes_the_shell_without_signalling_its_agent_process(wire: Wire) -> None:
    """MS-WSMV 3.1.4.4.1: a shell's Delete terminates its commands, so close() sends no
    Signal first; the lab's shell ends its agent process on Delete as Windows does."""
    wire.serve("h1")
    transport = _open(wire, "h1")
    assert transport.call(OS_FACTS)["ok"] is True
    protocol = transport._protocol
    assert protocol is not None
    signalled: list[str] = []
    protocol.cleanup_command = lambda shell_id, command_id: signalled.append(command_id)  # type: ignore[method-assign]
    before = wire.endpoint.counters("h1").requests
    transport.close()
    assert signalled == [] and wire.endpoint.counters("h1").requests - before == 1
    deadline = time.monotonic() + 10
    while any(t.name == "lab-winrs-h1" for t in threading.enumerate()):   # the agent process
        assert time.monotonic() < deadline, "the agent process outlived its shell's Delete"
        time.sleep(0.01)


def test_a_carried_answer_that_comes_with_the_key_line_and_the_end_is_its_calls(
        wire: Wire) -> None:
    """The key line, the carried request's answer and the command's end in one Receive (a
    spy merges the lab's outputs into one, as a process that ended after answering would
    give them): the answer is the call's own, unwrapped from its module load, and the agent
    is still known to be on the target."""
    model = wire.serve("h1")
    transport = _open(wire, "h1")
    protocol = transport._protocol
    assert protocol is not None
    real = protocol.get_command_output_raw

    def merged(shell_id: str, command_id: str) -> tuple[bytes, bytes, int, bool]:
        held = bytearray()
        while ops.SENTINEL.encode() not in held:
            with contextlib.suppress(WinRMOperationTimeoutError):
                held += real(shell_id, command_id)[0]
        return bytes(held), b"", 0, True

    protocol.get_command_output_raw = merged  # type: ignore[method-assign]
    answer = transport.call(ops.request("run_process", path="C:\\Windows\\System32\\cmd.exe",
                                        arguments=["/c", "exit", "0"]))
    assert answer["ok"] is True and answer["result"]["exit_code"] == 0, answer
    assert transport._command_id is None        # it ended: the next call starts another
    assert transport._seen.holds(transport._where, bootstrap.agent_hash())
    protocol.get_command_output_raw = real  # type: ignore[method-assign]
    assert transport.call(OS_FACTS)["ok"] is True
    transport.close()
    assert model.op_log[-2:] == ["run_process", "facts"]


def test_a_failed_command_start_is_a_connect_failure_even_with_a_request_to_carry(
        wire: Wire) -> None:
    """Nothing of the request has gone when WinRS refuses to start the agent process: the
    error is the connect's (with the library's text), not an op that may have run."""
    wire.serve("h1")
    transport = _open(wire, "h1")
    protocol = transport._protocol
    assert protocol is not None

    def refused(*_args: object, **_kwargs: object) -> str:
        raise requests.exceptions.ConnectionError("the listener went away")

    protocol.run_command = refused  # type: ignore[method-assign]
    with pytest.raises(TransportError) as caught:
        transport.call(OS_FACTS)
    transport.close()
    assert "may or may not have run" not in str(caught.value)
    assert "the listener went away" in str(caught.value), caught.value
