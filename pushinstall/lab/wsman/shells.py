"""Remote shells of the lab's WS-Management endpoint: the common part and the WinRS cmd shell.

A shell belongs to one simulated host. Ops run in their own thread (a simulated installer may
sleep for minutes); a Receive waits for output up to the request's OperationTimeout and answers
the WS-Man timeout fault when there is none, so clients poll instead of blocking on one HTTP
read. The cmd shell (what pywinrm uses) runs exactly `powershell -NoProfile -NonInteractive
-Command -` as one long-lived agent process: its stdin, fed Send by Send, follows the stdin
protocol of `remote.stdin` (the bootstrap line and its two data lines, the loop line, then one
request a line, each answered as it completes: `lab.stdin_session`). The push stream's
receiver (`remote.receiver`) is the other command it runs: its stdin is the agent core (loaded
from the host's cache when a valid DLL is there, else compiled), a `file_chunk` request line
and the chunk's raw bytes.
"""

from __future__ import annotations

import base64
import binascii
import queue
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from pushinstall.lab import received
from pushinstall.lab.endpoint_host import EndpointHost
from pushinstall.lab.stdin_session import StdinSession
from pushinstall.lab.wsman import soap
from pushinstall.lab.wsman.soap import NS, SoapRequest
from pushinstall.remote import modules, ops, receiver
from pushinstall.remote.stdin import POWERSHELL_COMMAND

NOT_RECOGNIZED = (
    "'{command}' is not recognized as an internal or external command,\r\n"
    "operable program or batch file.\r\n"
)


class LabHostLike(EndpointHost, Protocol):
    """What the WS-Man endpoint needs from a `pushinstall.lab.LabHost`."""

    def handle_stream(self, request_line: str, streamed: Iterator[bytes]) -> str: ...

    def load_streamed_core(self) -> None: ...

    def take_http_503(self) -> bool: ...


class Reply:
    """A response body and how to deliver it: HTTP status, and whether to cut the connection
    halfway through (the `drop_connection_on` fault)."""

    def __init__(self, body: bytes, status: int = 200, drop: bool = False) -> None:
        self.body = body
        self.status = status
        self.drop = drop


def boot_marker(host: LabHostLike) -> str:
    """The host's boot time: a shell made before a restart is gone after it."""
    state = getattr(host, "state", None)
    data = getattr(state, "data", None)
    return str(data.get("boot_time", "")) if isinstance(data, dict) else ""


def op_of(line: str) -> str:
    """The op inside an invocation line (behind the module loads a transport put ahead of
    it), "" when it cannot be read."""
    try:
        return str(modules.unwrapped(ops.decode_request(line.split("'")[1]))[1]["op"])
    except (IndexError, ValueError, KeyError, TypeError):
        return ""


def run_in_thread(name: str, target: Any) -> None:
    """Run `target()` in a daemon thread (ops may sleep; the HTTP thread must answer)."""
    threading.Thread(target=target, name=name, daemon=True).start()


class Shell:
    """A shell on one host: a condition to wait for output, the boot it was made in."""

    def __init__(self, host: LabHostLike, resource_uri: str) -> None:
        self.host = host
        self.id = str(uuid.uuid4()).upper()
        self.resource_uri = resource_uri
        self.boot = boot_marker(host)
        self.cond = threading.Condition()
        self.closed = False

    def dispatch(self, request: SoapRequest) -> Reply:
        """Answer Command, Send, Receive or Signal."""
        handler = getattr(self, f"do_{request.verb.lower()}", None)
        if handler is None:
            return Reply(soap.fault(request, soap.ACCESS_DENIED,
                                   f"the lab does not serve {request.verb}"), 500)
        reply: Reply = handler(request)
        return reply

    def has_output(self, command_id: str | None) -> bool:
        """True when a Receive for `command_id` would answer at once (overridden)."""
        return False

    def in_flight(self, command_id: str | None) -> bool:
        """True when `command_id` names work accepted earlier whose answer is still owed."""
        return self.has_output(command_id)

    def close(self) -> None:
        """Forget the shell (Delete, or the host restarted)."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def wait_for(self, ready: Any, timeout: float) -> bool:
        """Wait (holding `cond`) until `ready()` or `timeout` seconds passed."""
        return bool(self.cond.wait_for(lambda: self.closed or ready(), timeout=timeout))

    @staticmethod
    def receive_reply(request: SoapRequest, streams: list[tuple[str, str | None, bytes]],
                      state: tuple[str, str, int | None] | None, drop: bool = False) -> Reply:
        """A ReceiveResponse with `(name, command id, data)` streams and an optional
        `(command id, state uri, exit code)` CommandState."""
        node = soap.rsp("ReceiveResponse")
        for name, command_id, data in streams:
            attrib = {"Name": name}
            if command_id:
                attrib["CommandId"] = command_id
            soap.sub(node, "Stream", base64.b64encode(data).decode("ascii"), attrib)
        if state is not None:
            command_id, state_uri, exit_code = state
            state_node = soap.sub(node, "CommandState", None,
                                  {"CommandId": command_id, "State": state_uri})
            if exit_code is not None:
                soap.sub(state_node, "ExitCode", str(exit_code))
        return Reply(soap.envelope(request, soap.response_action(request), node), drop=drop)

    @staticmethod
    def timeout_fault(request: SoapRequest) -> Reply:
        """The answer to a Receive with nothing to say: both clients poll again."""
        return Reply(soap.fault(request, soap.OPERATION_TIMEOUT,
                                "The WS-Management service cannot complete the operation within "
                                "the time specified in OperationTimeout."), 500)


@dataclass
class _Command:
    command_id: str
    is_powershell: bool
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    exit_code: int | None = None
    op: str = ""
    started: bool = False
    answered: bool = False
    stdin: queue.Queue[bytes | None] = field(default_factory=queue.Queue)
    is_receiver: bool = False


class CmdShell(Shell):
    """The WinRS cmd shell, serving the one PowerShell command line the transports run."""

    def __init__(self, host: LabHostLike, resource_uri: str,
                 refusals: list[int] | None = None) -> None:
        super().__init__(host, resource_uri)
        self.commands: dict[str, _Command] = {}
        self.refusals = refusals if refusals is not None else [0]

    def do_command(self, request: SoapRequest) -> Reply:
        line = request.body.find("rsp:CommandLine", NS)
        if line is None:
            return Reply(soap.fault(request, soap.ACCESS_DENIED, "no CommandLine"), 500)
        words = [(line.findtext("rsp:Command", "", NS) or "").strip()]
        words += [(a.text or "").strip() for a in line.findall("rsp:Arguments", NS)]
        command_line = " ".join(" ".join(words).split())
        is_receiver = command_line == receiver.command_line()
        if is_receiver and self.host.lab.winrs_refused == "receiver":
            with self.cond:
                self.refusals[0] += 1
            return Reply(soap.access_denied(request), 500)
        command = _Command(line.get("CommandId") or str(uuid.uuid4()).upper(),
                           is_receiver or command_line.lower() == POWERSHELL_COMMAND.lower(),
                           is_receiver=is_receiver)
        if not command.is_powershell:
            command.stderr += NOT_RECOGNIZED.format(command=words[0]).encode()
            command.exit_code = 1
        with self.cond:
            self.commands[command.command_id] = command
        node = soap.rsp("CommandResponse")
        soap.sub(node, "CommandId", command.command_id)
        return Reply(soap.envelope(request, soap.response_action(request), node))

    def do_send(self, request: SoapRequest) -> Reply:
        for stream in request.body.findall("rsp:Send/rsp:Stream", NS):
            with self.cond:
                command = self.commands.get(stream.get("CommandId", ""))
                if command is None:
                    return Reply(soap.fault(request, soap.SHELL_NOT_FOUND, "no such command"), 500)
                start = command.is_powershell and not command.started
                command.started = command.started or start
            if start:
                run_in_thread(f"lab-winrs-{self.host.name}", lambda c=command: self._run(c))
            if command.is_powershell:   # base64.b64decode, without re-encoding the text
                command.stdin.put(binascii.a2b_base64(stream.text or ""))
                if stream.get("End", "").lower() == "true":
                    command.stdin.put(None)
        return Reply(soap.envelope(request, soap.response_action(request),
                                   soap.rsp("SendResponse")))

    def close(self) -> None:
        """Forget the shell and end its agent processes (they wait for stdin)."""
        super().close()
        with self.cond:
            commands = list(self.commands.values())
        for command in commands:
            command.stdin.put(None)

    def _run(self, command: _Command) -> None:
        """The agent process: stdin as it comes, one answer per request line, in order."""
        if command.is_receiver:
            self._receive(command)
            return
        session = StdinSession(self.host.handle_line, self.host.define_agent)
        while not session.ended and not self.closed:
            data = command.stdin.get()
            if data is None:
                break
            for op, output in session.feed(data):
                if op and self.host.latency > 0:
                    threading.Event().wait(self.host.latency)
                with self.cond:
                    command.op = op or command.op
                    if session.failed:
                        command.stderr += output.encode("utf-8")
                    else:
                        command.stdout += output.encode("utf-8")
                    self.cond.notify_all()
        with self.cond:
            command.exit_code = 1 if session.failed else 0
            self.cond.notify_all()

    def _receive(self, command: _Command) -> None:
        """The push stream receiver: compile the core sent (it must be this version's),
        then write the chunk as its Sends arrive; the answer goes once stdin has ended."""
        stdout, stderr = b"", b""
        sent = iter(command.stdin.get, None)     # the stream ends with End
        try:
            core, line, payload = receiver.split_stream(sent)
        except ValueError as exc:
            stderr = f"{exc}\r\n".encode()
        else:
            received.record(line)
            if core != ops.agent_core_held():
                stderr = b"Add-Type: the core sent is not this version's agent core\r\n"
            else:
                self.host.load_streamed_core()
                command.op = "file_chunk"
                if self.host.latency > 0:
                    threading.Event().wait(self.host.latency)
                stdout = self.host.handle_stream(line, payload).encode("utf-8")
        for _ in sent:      # what the receiver did not read
            pass
        with self.cond:
            command.stdout += stdout
            command.stderr += stderr
            command.exit_code = 0 if not stderr else 1
            self.cond.notify_all()

    def has_output(self, command_id: str | None) -> bool:
        command = self.commands.get(command_id or "")
        return command is not None and (bool(command.stdout or command.stderr)
                                        or command.exit_code is not None)

    def in_flight(self, command_id: str | None) -> bool:
        command = self.commands.get(command_id or "")
        return command is not None and (command.started or self.has_output(command_id))

    def do_receive(self, request: SoapRequest) -> Reply:
        desired = request.body.find("rsp:Receive/rsp:DesiredStream", NS)
        command_id = desired.get("CommandId", "") if desired is not None else ""
        with self.cond:
            command = self.commands.get(command_id)
            if command is None:
                return Reply(soap.fault(request, soap.SHELL_NOT_FOUND, "no such command"), 500)
            if not self.wait_for(lambda: self.has_output(command_id), request.operation_timeout):
                return self.timeout_fault(request)
            streams: list[tuple[str, str | None, bytes]] = [
                ("stdout", command_id, bytes(command.stdout)),
                       ("stderr", command_id, bytes(command.stderr))]
            answered = ops.SENTINEL.encode() in command.stdout
            command.stdout.clear()
            command.stderr.clear()
            state = (command_id, soap.DONE if command.exit_code is not None else soap.RUNNING,
                     command.exit_code)
        drop = answered and command.op in self.host.lab.drop_connection_on
        return self.receive_reply(request, streams, state, drop)

    def do_signal(self, request: SoapRequest) -> Reply:
        signal = request.body.find("rsp:Signal", NS)
        with self.cond:
            command = self.commands.pop(signal.get("CommandId", "") if signal is not None
                                        else "", None)
        if command is not None:
            command.stdin.put(None)     # terminate: the agent process reads no more
        return Reply(soap.envelope(request, soap.response_action(request),
                                   soap.rsp("SignalResponse")))
