"""The lab's side of the stdin protocol (`remote.stdin`): one simulated agent process.

Its stdin is fed as it arrives. The first line must be the bootstrap line; the next two are its
data, the agent's hash and the packed agent (or an empty line), and the host's `define` runs the
bootstrap's definition steps on them (`LabHost.define_agent`: the sent agent really expanded and
hashed, or the copy cached in the host's files). A cached copy that is gone or differs answers
the MISSING line and ends the process, as the bootstrap line does. Then the loop line must
follow (anything else is code the lab does not run, as a real PowerShell would run it), and
every later line is one request, read as data: sealed fields opened with the lab's session key,
answered with one answer line. The lab's endpoints (the WinRS cmd shell and the SSH server) run
it; it records every line it receives (`received`) for the secrets tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from pushinstall.lab import received
from pushinstall.lab.agent_cache import Defined, refusal
from pushinstall.remote import bootstrap, modules, ops
from pushinstall.remote.sealing import KeyPair
from pushinstall.remote.stdin import LOOP_FUNCTION, Lines, bootstrap_line, packed_of_line

LAB_KEYS = KeyPair()
_LOOP = 4       # the lines before it: the bootstrap line, the hash, the agent


class StdinSession:
    """Feed stdin bytes with `feed`; the agent is defined by `define`, each complete request
    line is answered by `answer`."""

    def __init__(self, answer: Callable[[str], str], define: Callable[[str, bytes], Defined],
                 keys: KeyPair = LAB_KEYS) -> None:
        self._answer = answer
        self._define = define
        self._keys = keys
        self._lines = Lines()
        self._seen = 0
        self._hash = ""
        self._modules: set[str] = set()     # the agent modules this process loaded
        self.ended = False
        self.failed = False

    def feed(self, data: bytes) -> Iterator[tuple[str, str]]:
        """`(op, output)` for each line `data` completes, each once its line has run (the
        next is not read before): output is what the process writes (stdout, or for a
        refused line the error text, with `failed` set). A real agent writes its key line
        before it reads the request lines that came with the session script."""
        for line in self._lines.feed(data):
            if self.ended:
                break
            received.record(line)
            yield self._line(line)

    def _line(self, line: str) -> tuple[str, str]:
        self._seen += 1
        if self._seen < _LOOP:
            return self._bootstrap(line)
        if self._seen == _LOOP:
            if line.strip() != LOOP_FUNCTION:
                return self._fail(f"the lab runs only {LOOP_FUNCTION} after the agent\r\n")
            return "", self._keys.key_line() + "\r\n"
        if not line:
            self.ended = True
            return "", ""
        try:
            request = ops.decode_request(line)
        except ValueError:
            return "", self._answer(ops.AGENT_FUNCTION + " -Request ''")
        refused = refusal(request, self._modules)
        if refused is not None:
            return str(request.get("op", "")), ops.encode_answer(refused) + "\r\n"
        try:
            opened = self._keys.open(request)
        except ValueError:      # sealed to another key: the sealed value fails validation
            opened = request
        output = self._answer(ops.invocation(opened))
        # the agent's answer is a whole line (WriteLine), whatever the host model returned
        op = str(modules.unwrapped(opened)[1].get("op", ""))
        return op, output if output.endswith("\n") else output + "\r\n"

    def _bootstrap(self, line: str) -> tuple[str, str]:
        """The bootstrap line and its two data lines."""
        if self._seen == 1:
            if line.strip() != bootstrap_line():
                return self._fail("the lab runs only the bootstrap line first\r\n")
            return "", ""
        if self._seen == 2:
            self._hash = line.strip()
            return "", ""
        try:
            packed = packed_of_line(line)
        except ValueError as exc:
            return self._fail(f"The agent was not defined: {exc}\r\n")
        defined = self._define(self._hash, packed)
        if defined.error:
            return self._fail(defined.error + "\r\n")
        if defined.missing:     # the bootstrap line writes it and exits
            self.ended = True
            return "", bootstrap.MISSING + "\r\n"
        return "", ""

    def _fail(self, text: str) -> tuple[str, str]:
        self.ended = self.failed = True
        return "", text
