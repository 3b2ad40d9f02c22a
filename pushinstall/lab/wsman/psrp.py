"""The PowerShell remoting shell of the lab's WS-Management endpoint (what pypsrp uses).

Built on psrpcore's server classes. The Create carries the pool's opening messages
(`creationXml`); each Command creates one pipeline, its first fragment in the Command and the
rest in Sends. Outgoing PSRP data is routed by pipeline id: a Receive without a CommandId reads
the pool's messages, one with a CommandId that pipeline's.

A pipeline whose script is exactly the bootstrap (`remote/bootstrap.py`) defines the agent
from its parameters as the target would (`LabHost.define_agent`: the sent agent really expanded
and hashed, or the copy cached in the host's files), then answers the key line and, when a
`Request` went along, its answer; a pipeline whose script is exactly `ops.agent_source()`
defines it too (what tests/windows sends) and answers nothing. Any other script is handed to
`LabHost.handle_line` (the invocation line), whose output lines become the pipeline's output
objects. Before the agent is defined an invocation fails the way PowerShell does: an error
record saying `Invoke-PushinstallOp` is not recognised.
"""

from __future__ import annotations

import base64
import threading
import uuid
from typing import Any

from psrpcore import (
    CreatePipelineEvent,
    PSRPPayload,
    ServerPipeline,
    ServerRunspacePool,
    StreamType,
)
from psrpcore.types import ErrorCategory, ErrorCategoryInfo, NETException, PSInvocationState

from pushinstall.lab import agent_cache, received
from pushinstall.lab.wsman import soap
from pushinstall.lab.wsman.shells import LabHostLike, Reply, Shell, op_of, run_in_thread
from pushinstall.lab.wsman.soap import NS, SoapRequest
from pushinstall.remote import bootstrap, ops
from pushinstall.remote.sealing import KEY_FUNCTION, KeyPair

LAB_KEYS = KeyPair()


def _text(value: Any) -> str:
    """A parameter value as the target's logs could show it (a byte array as base64)."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    return str(value)


def parameters_of(commands: list[Any]) -> list[tuple[str, Any]]:
    """The first command's parameters, `(name, value)`."""
    return [(str(k), v) for k, v in commands[0].parameters] if commands else []


class _Pipe:
    """A pipeline's bookkeeping beside psrpcore's object."""

    def __init__(self, pipeline: ServerPipeline, command_id: str) -> None:
        self.pipeline = pipeline
        self.command_id = command_id
        self.started = False
        self.done = False
        self.op = ""


class PsrpShell(Shell):
    """A runspace pool on one host."""

    def __init__(self, host: LabHostLike, resource_uri: str, creation: bytes) -> None:
        super().__init__(host, resource_uri)
        self.pool = ServerRunspacePool()
        self.outbox: dict[uuid.UUID | None, bytearray] = {}
        self.pipes: dict[uuid.UUID, _Pipe] = {}
        self.agent_defined = False
        self.modules: set[str] = set()      # the agent modules this session loaded
        # the agent makes a key per session; the lab shares one (2048-bit keygen costs ~90 ms)
        self.keys = LAB_KEYS
        with self.cond:
            self._feed(creation, None)

    # ---- PSRP plumbing (call with cond held) -----------------------------------------------

    def _feed(self, data: bytes, pipeline_id: uuid.UUID | None) -> None:
        self.pool.receive_data(PSRPPayload(data, StreamType.default, pipeline_id))
        while (event := self.pool.next_event()) is not None:
            if isinstance(event, CreatePipelineEvent) and event.pipeline_id in self.pipes:
                pipe = self.pipes[event.pipeline_id]
                if not pipe.started:
                    pipe.started = True
                    run_in_thread(f"lab-psrp-{self.host.name}", lambda p=pipe: self._run(p))
        self._flush()

    def _flush(self) -> None:
        while (payload := self.pool.data_to_send()) is not None:
            self.outbox.setdefault(payload.pipeline_id, bytearray()).extend(payload.data)
        self.cond.notify_all()

    # ---- running a pipeline ----------------------------------------------------------------

    def _run(self, pipe: _Pipe) -> None:
        metadata: Any = pipe.pipeline.metadata
        commands = list(metadata.commands) if metadata else []
        script = "\n".join(str(c.command_text) for c in commands)
        received.record(script, *(_text(v) for c in commands for _, v in c.parameters))
        cmdlet = len(commands) == 1 and not commands[0].is_script
        parameters = {str(k): v for k, v in commands[0].parameters} if cmdlet else {}
        with self.cond:
            # Running is not announced: the client learns the state with the output, one
            # round trip fewer per call.
            pipe.pipeline._change_state(PSInvocationState.Running, emit=False)
        output, error, refused = "", "", None
        if not cmdlet and len(commands) == 1 and script == bootstrap.script():
            output, error = self._bootstrap(pipe, dict(parameters_of(commands)))
        elif script == ops.agent_source():
            self.agent_defined = True
        elif not self.agent_defined:
            error = (f"The term '{ops.AGENT_FUNCTION}' is not recognized as the name of a "
                     "cmdlet, function, script file, or operable program.")
        elif cmdlet and script == KEY_FUNCTION:
            output = self.keys.key_line()
        else:
            if cmdlet and script == ops.AGENT_FUNCTION:
                # the request came as a parameter, its secrets sealed to this session's key
                refused = self._refused(str(parameters.get("Request", "")))
                script = self._opened_invocation(str(parameters.get("Request", "")))
            pipe.op = op_of(script)
            if self.host.latency > 0:
                threading.Event().wait(self.host.latency)
            output = refused or self.host.handle_line(script)
        with self.cond:
            if self.closed or pipe.pipeline.state != PSInvocationState.Running:
                return  # stopped or deleted meanwhile
            for line in output.splitlines():
                pipe.pipeline.write_output(line)
            if error:
                pipe.pipeline.write_error(
                    NETException(Message=error),
                    ErrorCategoryInfo(Category=ErrorCategory.ObjectNotFound,
                                      Reason="CommandNotFoundException"),
                    fully_qualified_error_id="CommandNotFoundException")
            pipe.pipeline.complete()
            pipe.done = True
            self._flush()

    def _bootstrap(self, pipe: _Pipe, parameters: dict[str, Any]) -> tuple[str, str]:
        """bootstrap.ps1 on this host: `(output, error)`. `Agent` binds as [byte[]]: a byte
        array, else nothing usable (PowerShell would refuse to bind a string)."""
        agent = parameters.get("Agent")
        packed = bytes(agent) if isinstance(agent, (bytes, bytearray)) else b""
        defined = self.host.define_agent(str(parameters.get("Hash", "")), packed)
        if defined.error:
            return "", defined.error
        if defined.missing:
            return bootstrap.MISSING + "\n", ""
        self.agent_defined = True
        output = self.keys.key_line() + "\n"
        if parameters.get("Request"):
            refused = self._refused(str(parameters["Request"]))
            line = self._opened_invocation(str(parameters["Request"]))
            pipe.op = op_of(line)
            if self.host.latency > 0:
                threading.Event().wait(self.host.latency)
            output += refused or self.host.handle_line(line)
        return output, ""

    def _refused(self, encoded: str) -> str | None:
        """The answer line when the request uses a module this session has not loaded."""
        try:
            answer = agent_cache.refusal(ops.decode_request(encoded), self.modules)
        except ValueError:
            return None
        return None if answer is None else ops.encode_answer(answer) + "\n"

    def _opened_invocation(self, encoded: str) -> str:
        """The invocation line for a request parameter, its sealed fields opened."""
        try:
            request = ops.decode_request(encoded)
        except ValueError:
            return ops.AGENT_FUNCTION + " -Request ''"
        try:
            return ops.invocation(self.keys.open(request))
        except ValueError:      # sealed to another key: the sealed value fails validation
            return ops.invocation(request)

    # ---- WS-Man actions --------------------------------------------------------------------

    def do_command(self, request: SoapRequest) -> Reply:
        line = request.body.find("rsp:CommandLine", NS)
        command_id = (line.get("CommandId") if line is not None else None) or ""
        try:
            pipeline_id = uuid.UUID(command_id)
        except ValueError:
            return Reply(soap.fault(request, soap.ACCESS_DENIED, "a PSRP Command needs a "
                                    "CommandId that is the pipeline id"), 500)
        data = base64.b64decode(line.findtext("rsp:Arguments", "", NS) if line is not None else "")
        with self.cond:
            self.pipes[pipeline_id] = _Pipe(ServerPipeline(self.pool, pipeline_id), command_id)
            self._feed(data, pipeline_id)
        node = soap.rsp("CommandResponse")
        soap.sub(node, "CommandId", command_id)
        return Reply(soap.envelope(request, soap.response_action(request), node))

    def do_send(self, request: SoapRequest) -> Reply:
        for stream in request.body.findall("rsp:Send/rsp:Stream", NS):
            command_id = stream.get("CommandId")
            with self.cond:
                self._feed(base64.b64decode(stream.text or ""),
                           uuid.UUID(command_id) if command_id else None)
        return Reply(soap.envelope(request, soap.response_action(request),
                                   soap.rsp("SendResponse")))

    def _key(self, command_id: str | None) -> uuid.UUID | None:
        return uuid.UUID(command_id) if command_id else None

    def has_output(self, command_id: str | None) -> bool:
        key = self._key(command_id)
        return bool(self.outbox.get(key))

    def in_flight(self, command_id: str | None) -> bool:
        key = self._key(command_id)
        return (key is not None and key in self.pipes) or self.has_output(command_id)

    def do_receive(self, request: SoapRequest) -> Reply:
        desired = request.body.find("rsp:Receive/rsp:DesiredStream", NS)
        command_id = desired.get("CommandId") if desired is not None else None
        key = self._key(command_id)
        with self.cond:
            if key is not None and key not in self.pipes:
                return Reply(soap.fault(request, soap.SHELL_NOT_FOUND,
                                        f"no pipeline {command_id}"), 500)
            if not self.wait_for(lambda: self.has_output(command_id),
                                 request.operation_timeout):
                return self.timeout_fault(request)
            data = bytes(self.outbox.pop(key, b""))
            state = None
            drop = False
            if key is not None:
                pipe = self.pipes[key]
                if pipe.done:
                    state = (pipe.command_id, soap.DONE, 0)
                    del self.pipes[key]
                    pipe.pipeline.close()
                    drop = pipe.op in self.host.lab.drop_connection_on
        return self.receive_reply(request, [("stdout", command_id, data)], state, drop)

    def do_signal(self, request: SoapRequest) -> Reply:
        signal = request.body.find("rsp:Signal", NS)
        command_id = signal.get("CommandId") if signal is not None else None
        with self.cond:
            key = self._key(command_id)
            pipe = self.pipes.pop(key, None) if key is not None else None
            if pipe is not None and pipe.pipeline.state == PSInvocationState.Running:
                pipe.pipeline.stop()
                self._flush()
        return Reply(soap.envelope(request, soap.response_action(request),
                                   soap.rsp("SignalResponse")))
