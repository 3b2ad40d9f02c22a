"""What the lab's network endpoints (the WS-Man service and the SSH server) need from a
simulated host (`pushinstall.lab.LabHost`); each endpoint's own Protocol adds what only it
uses."""

from __future__ import annotations

from typing import Protocol

from pushinstall.lab.agent_cache import Defined


class WireFaultVars(Protocol):
    """The lab vars an endpoint reads (`pushinstall.lab.vars.LabVars`)."""

    drop_connection_on: list[str]
    winrs_refused: bool | str


class EndpointHost(Protocol):
    """A simulated host as every endpoint sees it: its name, wire faults and latency,
    `define_agent`, the bootstrap's definition of the agent (lab/agent_cache.py), and
    `handle_line`, which answers one agent invocation line."""

    name: str

    @property
    def lab(self) -> WireFaultVars: ...

    @property
    def latency(self) -> float: ...

    def define_agent(self, agent_hash: str, packed: bytes) -> Defined: ...

    def handle_line(self, command: str) -> str: ...

    def connection_fault(self) -> str | None: ...

    def refuses_connect(self) -> bool: ...
