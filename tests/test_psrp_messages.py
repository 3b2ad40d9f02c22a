"""The PSRP messages every host is sent alike (SESSION_CAPABILITY, INIT_RUNSPACEPOOL,
CREATE_PIPELINE) come from templates (`transports/psrp_messages.py`): each packed message is
held, byte for byte, to the one pypsrp's own serializer packs with the same GUIDs, for
hostile parameter values too (data is never code). Real pypsrp, nothing mocked.
"""

from __future__ import annotations

import uuid

import pytest
from kit import OS_FACTS, Wire
from pypsrp.complex_objects import (
    ApartmentState,
    Command,
    CommandParameter,
    HostInfo,
    Pipeline,
    PSThreadOptions,
    RemoteStreamOptions,
)
from pypsrp.messages import (
    CreatePipeline,
    Destination,
    InitRunspacePool,
    Message,
    SessionCapability,
)
from pypsrp.serializer import Serializer

from pushinstall.remote import bootstrap
from pushinstall.transports import psrp_messages, psrp_session
from pushinstall.transports.psrp import PSRPTransport

RPID, PID = str(uuid.UUID(int=0x1234)), str(uuid.UUID(int=0xABCDEF))

HOSTILE = ["plain", "'; Remove-Item C:\\ -Recurse #", "</S><S N=\"V\">injected</S>",
           "&amp; &lt; < > & \" '", "]]><!--", "line\nbreak\r\n\ttab _x000A_ _X0041_ _x",
           "\x00\x01\x1f\x7f\x85\x9f", "\u00e9\u4e2d\U0001f600", "\ue000pushinstall-slot-0\ue001",
           "\ud800 lone surrogate", "$(whoami) `n ${env:PATH}", "x" * 70000]


def _pipeline(values: list[object], script: str = "param($A, $B) $A", cmdlet: bool = False,
              statements: int = 1) -> CreatePipeline:
    commands = []
    for index in range(statements):
        command = Command(cmd=f"{script}{index or ''}", is_script=not cmdlet)
        for number, value in enumerate(values):
            command.args.append(CommandParameter(name=f"P{number}", value=value))
        command.end_of_statement = True
        commands.append(command)
    return CreatePipeline(True, ApartmentState(value=2),
                          RemoteStreamOptions(value=RemoteStreamOptions.ADD_INVOCATION_INFO),
                          False, HostInfo(host=None),
                          Pipeline(is_nested=False, cmds=commands, history="",
                                   redirect_err_to_out=False), False)


def _packed(make: object, serializer: Serializer) -> bytes:
    data = make() if callable(make) else make
    return Message(Destination.SERVER, RPID, PID, data, serializer).pack()


def _same(make: object) -> bytes:
    """Pack a fresh `make()` twice through ours (the template made, then used) and once
    through pypsrp's serializer: all three the same bytes."""
    theirs = _packed(make, Serializer())
    ours = psrp_session.Serializer()
    assert _packed(make, ours) == theirs
    assert _packed(make, ours) == theirs
    return theirs


def test_the_pool_open_messages_are_pypsrp_s_bytes() -> None:
    _same(lambda: SessionCapability("2.3", "2.0", "1.1.0.1"))
    _same(lambda: InitRunspacePool(1, 1, PSThreadOptions(value=0), ApartmentState(value=2),
                                   HostInfo(host=None), None))
    _same(lambda: InitRunspacePool(1, 4, PSThreadOptions(value=1), ApartmentState(value=0),
                                   HostInfo(host=None), None))


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_string_parameter_is_serialized_as_pypsrp_serializes_it(value: str) -> None:
    packed = _same(lambda: _pipeline([value, "second"]))
    assert b"injected</S>" not in packed   # the markup arrives as text, escaped
    # and its template serves the next value of the same shape
    _same(lambda: _pipeline(["other", value]))


@pytest.mark.parametrize("value", [b"\x00", b"\x00\x01\xff" * 999, b"</BA>", "\ue000".encode()])
def test_a_bytes_parameter_is_serialized_as_pypsrp_serializes_it(value: bytes) -> None:
    _same(lambda: _pipeline([value, "s", b"tail"]))


@pytest.mark.parametrize("values", [[], [None], ["", b""], [True, 3, 2.5], ["a", None, "b"]])
def test_values_that_are_no_slot_make_a_shape_of_their_own(values: list[object]) -> None:
    _same(lambda: _pipeline(values))
    _same(lambda: _pipeline(["z", *values]))


def test_a_shape_differs_in_what_the_serializer_reads() -> None:
    # the same slots under another script, as a cmdlet, in more statements, with another
    # parameter name: each its own template, each pypsrp's bytes
    for make in (lambda: _pipeline(["v"]), lambda: _pipeline(["v"], script="Other"),
                 lambda: _pipeline(["v"], cmdlet=True),
                 lambda: _pipeline(["v"], statements=3)):
        _same(make)
    renamed = _pipeline(["v"])
    renamed.pipeline.commands[0].args[0].name = "Renamed"
    assert _packed(renamed, psrp_session.Serializer()) == _packed(renamed, Serializer())


def test_a_value_of_unknown_kind_is_left_to_pypsrp() -> None:
    message = _pipeline([uuid.UUID(int=5), {"k": "v"}])
    assert psrp_messages.TEMPLATES.serialized(message, Serializer()) is None
    assert _packed(message, psrp_session.Serializer()) == _packed(message, Serializer())


def test_the_bootstrap_pipeline_is_pypsrp_s_bytes() -> None:
    from pushinstall.remote import ops

    agent = ops.agent_source()
    for with_agent in (True, False):
        parameters = bootstrap.parameters(with_agent, "eyJvcCI6ICJmYWN0cyJ9", agent)

        def make(parameters: dict[str, str | bytes] = parameters) -> CreatePipeline:
            message = _pipeline([], script=bootstrap.script())
            for name, value in parameters.items():
                message.pipeline.commands[0].args.append(CommandParameter(name=name,
                                                                          value=value))
            return message
        _same(make)


def test_a_check_over_the_lab_uses_the_templates(wire: Wire) -> None:
    wire.serve("t1")
    transport = PSRPTransport(wire.host("t1"))
    transport.open()
    try:
        assert transport.call(OS_FACTS)["ok"] is True
        assert transport.call(OS_FACTS)["ok"] is True   # a pipeline of a template made before
    finally:
        transport.close()
    made = psrp_messages.TEMPLATES._made
    kinds = {key[0] for key in made if made[key] is not None}   # type: ignore[index]
    assert {SessionCapability, InitRunspacePool, CreatePipeline} <= kinds
