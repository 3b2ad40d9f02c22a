"""What the two WS-Management transports (psrp, winrm) share: endpoint settings from the
inventory connection, the poll interval, the deadline every HTTP exchange ends by
(`ExchangeWatch`), the ONE mapping of their libraries' exceptions (requests, pypsrp, pywinrm,
pyspnego) into errors.py, with a hint a person can act on, and `WSManTransportBase`: the
common construction, `put_file` over the push stream (a WinRS command's stdin,
`remote/receiver.py`) and the HTTP traffic counter its figures come from."""

from __future__ import annotations

import abc
import contextlib
import functools
import logging
import math
import socket
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import requests
from spnego.exceptions import SpnegoError

from pushinstall.errors import (
    AuthenticationFailed,
    HostError,
    ShellRefused,
    TransportError,
    TransportTimeout,
    Unreachable,
)
from pushinstall.model import Host
from pushinstall.remote import bootstrap
from pushinstall.secret import Redactor
from pushinstall.transports.deadline import WATCHDOG, io_deadline_at
from pushinstall.transports.push import CALLS_WAY, STREAM_WAY, PushStats, StdinCommand, push_file

log = logging.getLogger(__name__)

T = TypeVar("T")
SHELL_NOT_FOUND = 2150858843
# WSManFault codes of a refused WinRS shell or command: the Win32 ERROR_ACCESS_DENIED (a user
# not granted the cmd shell, e.g. one allowed only a PowerShell session configuration or a JEA
# endpoint) and ERROR_WSMAN_REMOTESHELLS_NOT_ALLOWED (wsmerror.h), "The WS-Management service
# cannot process the request. The service is configured to not accept any remote shell
# requests", the answer to the policy AllowRemoteShellAccess = 0 (Microsoft Learn, Policy CSP
# RemoteShell: "If you set this policy to 'disabled', new remote shell connections are rejected
# by the server"; HKLM\Software\Policies\Microsoft\Windows\WinRM\Service\WinRS).
SHELL_REFUSED = (5, 2150859180)
ACCESS_DENIED_SUBCODES = ("w:AccessDenied", "wsman:AccessDenied")
# An exchange may outlive its call's (or the host's) deadline by this much, so a poll whose
# OperationTimeout was rounded up still ends normally and a timed-out pipeline can be stopped.
DEADLINE_GRACE = 2.0

AUTH_HINTS = {
    "negotiate": "401 with Negotiate/NTLM: check the password, that the user is a local "
                 "administrator, and LocalAccountTokenFilterPolicy=1 for local accounts",
    "ntlm": "401 with NTLM: check the password, that the user is a local administrator, and "
            "LocalAccountTokenFilterPolicy=1 for local accounts",
    "kerberos": "Kerberos: check the ticket (klist), that the host name is the FQDN its SPN "
                "HTTP/<fqdn> is registered for, and that the controller's clock is in sync",
    "credssp": "CredSSP: the server must allow it (Enable-WSManCredSSP -Role Server) and the "
               "client needs requests-credssp; check the password",
    "basic": "Basic: check the password; Basic needs a local account and WinRM's "
             "Service/Auth/Basic=true",
    "certificate": "certificate auth: check the client certificate is mapped to a local "
                   "account (winrm/config/service/certmapping) and HTTPS is used",
}


@dataclass(frozen=True)
class Endpoint:
    """How to reach one host's WinRM service."""

    host_name: str
    address: str
    port: int
    tls: bool
    auth: str
    verify: bool | str
    poll_s: int          # OperationTimeout of a Receive: the server answers within it
    read_timeout: float  # HTTP read timeout, always above poll_s
    exchange_timeout: float  # one whole HTTP exchange: connect, send, the complete answer

    @property
    def url(self) -> str:
        """`http(s)://address:port/wsman`."""
        return f"{'https' if self.tls else 'http'}://{self.address}:{self.port}/wsman"


def endpoint_of(host: Host) -> Endpoint:
    """The endpoint settings of `host`; Basic over plain HTTP is refused unless the inventory
    says `allow_unencrypted: true`."""
    conn = host.connection
    if conn.auth == "basic" and not conn.tls and not conn.allow_unencrypted:
        raise TransportError(
            "refusing to send Basic credentials over plain HTTP", host=host.name,
            hint="use HTTPS (tls: true), NTLM/Negotiate (encrypted), or set "
                 "allow_unencrypted: true to accept the risk")
    port = conn.port or (5986 if conn.tls else 5985)
    read_timeout = max(conn.read_timeout, 3.0)
    poll_s = max(1, min(math.floor(conn.operation_timeout), math.floor(read_timeout) - 2))
    # The loader refuses an empty value; a Connection built in code must not turn it off either
    # (both libraries read '' as "do not validate").
    verify = True if conn.cert_validation == "" else conn.cert_validation
    return Endpoint(host.name, conn.address or host.name, port, conn.tls, conn.auth,
                    verify, poll_s, read_timeout, conn.connect_timeout + read_timeout)


class SlowAnswer(Exception):
    """An HTTP exchange cut (or not started) because its time was up."""

    def __init__(self, seconds: float, bound: str) -> None:
        super().__init__(f"no complete answer within {seconds:.3g} s ({bound})")


class ExchangeWatch:
    """Ends every HTTP exchange of one transport by its deadline: the sooner of
    `exchange_timeout` from its start and (plus `DEADLINE_GRACE`) the deadline of the call in
    progress (`call`) or of the host's work (`deadline.io_deadline`).

    requests' read timeout bounds each `recv`, so a server that drips its answer a byte at a
    time defeats it; at the deadline the watchdog shuts the sockets of this transport's
    connections, the blocked read returns, and the exchange raises `SlowAnswer`. The hooks
    wrap each library's one exchange method on its own objects (as pypsrp itself wraps its
    pool classes) and change nothing else about how pypsrp or pywinrm is used."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.exchange_timeout = endpoint.exchange_timeout
        self._call_at = math.inf
        self._connections: weakref.WeakSet[Any] = weakref.WeakSet()
        self._adapters: weakref.WeakSet[Any] = weakref.WeakSet()

    @contextlib.contextmanager
    def call(self, timeout: float | None) -> Iterator[None]:
        """The exchanges inside end within `timeout` seconds (+ grace) from now."""
        previous = self._call_at
        self._call_at = math.inf if timeout is None else time.monotonic() + timeout
        try:
            yield
        finally:
            self._call_at = previous

    def watch_pypsrp(self, wsman: Any) -> None:
        """Bound the exchanges of a pypsrp `WSMan` (its transport's `_send_request`, and the
        direct POST of psrp_http.DirectHTTP)."""
        transport = wsman.transport
        for name in ("_send_request", "_send_direct"):
            if hasattr(transport, name):
                self._wrap(transport, name, lambda args: transport.session)

    def watch_pywinrm(self, protocol: Any) -> None:
        """Bound the exchanges of a pywinrm `Protocol` (its transport's
        `_send_message_request(session, request)`, which the encryption set-up uses too)."""
        self._wrap(protocol.transport, "_send_message_request", lambda args: args[0])

    def _wrap(self, owner: Any, name: str, session_of: Callable[[tuple[Any, ...]], Any]) -> None:
        exchange = getattr(owner, name)

        @functools.wraps(exchange)
        def bounded(*args: Any, **kwargs: Any) -> Any:
            self._attach(session_of(args))
            return self._bounded(exchange, args, kwargs)
        setattr(owner, name, bounded)

    def _bounded(self, exchange: Callable[..., T], args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> T:
        now = time.monotonic()
        outer = min(self._call_at, io_deadline_at()) + DEADLINE_GRACE
        at = min(now + self.exchange_timeout, outer)
        bound = ("the step or host deadline" if outer < now + self.exchange_timeout else
                 "connect_timeout + read_timeout, the most one request may take")
        if at <= now:
            raise SlowAnswer(0, bound)
        alarm = WATCHDOG.arm(at, self._cut)
        try:
            result = exchange(*args, **kwargs)
        except Exception as error:
            if alarm.disarm():
                raise SlowAnswer(at - now, bound) from error
            raise
        if alarm.disarm():   # cut as it ended: the connection is gone, the answer may be short
            raise SlowAnswer(at - now, bound)
        return result

    def _cut(self) -> None:
        """Shut every socket of this transport (the watchdog's thread): a blocked read ends."""
        for connection in list(self._connections):
            sock = getattr(connection, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):   # the plain socket's, not TLS's, shutdown
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def _attach(self, session: Any) -> None:
        """Note every connection `session`'s pools make from now on."""
        if session is None:
            return
        for adapter in list(session.adapters.values()):
            manager = getattr(adapter, "poolmanager", None)
            if manager is None or adapter in self._adapters:
                continue
            self._adapters.add(adapter)
            classes = dict(manager.pool_classes_by_scheme)   # this manager's copy only
            for scheme, make_pool in classes.items():
                classes[scheme] = self._pool_maker(make_pool)
            manager.pool_classes_by_scheme = classes
            for key in list(manager.pools.keys()):
                with contextlib.suppress(KeyError):
                    self._watch_pool(manager.pools[key])

    def _pool_maker(self, make_pool: Callable[..., Any]) -> Callable[..., Any]:
        # not functools.wraps: make_pool is a class, and copying its __dict__ (4 per
        # session) cost ~2 % of a psrp check's controller CPU
        def make(*args: Any, **kwargs: Any) -> Any:
            pool = make_pool(*args, **kwargs)
            self._watch_pool(pool)
            return pool
        return make

    def _watch_pool(self, pool: Any) -> None:
        make_connection = pool.ConnectionCls

        def connection(*args: Any, **kwargs: Any) -> Any:
            made = make_connection(*args, **kwargs)
            self._connections.add(made)
            return made
        pool.ConnectionCls = connection


def _status_code(exc: Exception) -> int | None:
    code = getattr(exc, "code", None)
    if isinstance(code, int) and 100 <= code < 600:
        return code
    return None


def refused_shell(exc: Exception) -> bool:
    """True when `exc` is the WS-Man fault of a refused shell or command (`SHELL_REFUSED`, or
    the sender's AccessDenied subcode without a WSManFault detail): policy, not the network."""
    from pypsrp.exceptions import WSManFaultError
    from winrm.exceptions import WSManFaultError as WinRMFault

    if isinstance(exc, WSManFaultError):
        return exc.code in SHELL_REFUSED or exc.code in ACCESS_DENIED_SUBCODES
    if isinstance(exc, WinRMFault):
        return (exc.wsman_fault_code in SHELL_REFUSED
                or exc.fault_subcode in ACCESS_DENIED_SUBCODES)
    return False


def map_error(exc: Exception, endpoint: Endpoint, doing: str, in_flight: bool,
              redactor: Redactor) -> HostError:
    """One library exception as an errors.py error. `in_flight` says a request that may
    have reached the target was being answered (so it may or may not have run)."""
    from pypsrp.exceptions import AuthenticationError, WSManFaultError
    from winrm.exceptions import InvalidCredentialsError, WinRMOperationTimeoutError

    name, where = endpoint.host_name, endpoint.url
    text = redactor.redact(str(exc) or type(exc).__name__)
    code = _status_code(exc)
    if isinstance(exc, SlowAnswer):
        return TransportTimeout(
            f"{where} sent no complete answer in time during {doing}: {text}", host=name,
            hint="the server answers too slowly or drips its answer (a hung WinRM service, a "
                 "proxy or middlebox holding the connection); connect_timeout + read_timeout "
                 "bound one request, the step and host timeouts a whole call")
    if isinstance(exc, requests.exceptions.SSLError):
        return TransportError(
            f"TLS with {where} failed: {text}", host=name,
            hint="the server's certificate is not trusted: set cert_validation to the CA "
                 "bundle that signed it, or to false to accept the risk")
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return TransportTimeout(f"no connection to {where} during {doing}: {text}", host=name,
                                hint="check the network path and the firewall (port "
                                     f"{endpoint.port}); connect_timeout is set per host")
    if isinstance(exc, requests.exceptions.ReadTimeout | WinRMOperationTimeoutError):
        return TransportTimeout(
            f"{where} did not answer within the read timeout during {doing}", host=name,
            hint="the WinRM service hangs or the network drops packets; read_timeout is set "
                 "per host (long operations are polled, they never need a long read timeout)")
    if isinstance(exc, AuthenticationError | InvalidCredentialsError | SpnegoError) \
            or code == 401:
        return AuthenticationFailed(f"{where} refused the credentials ({endpoint.auth})",
                                    host=name, hint=AUTH_HINTS.get(endpoint.auth))
    if code == 503:
        return Unreachable(f"{where} answered HTTP 503 during {doing}", host=name,
                           hint="the WinRM service is starting or overloaded; retried")
    if isinstance(exc, requests.exceptions.ConnectionError
                  | requests.exceptions.ChunkedEncodingError):
        if in_flight:
            return Unreachable(
                f"connection to {where} lost while '{doing}' was in flight: it may or may not "
                "have run on the target", host=name,
                hint="check the host's state before running again; a non-idempotent op is "
                     "never re-sent automatically")
        return Unreachable(f"cannot connect to {where} during {doing}: {text}", host=name,
                           hint="is the WinRM service running and the port open in the "
                                "Windows firewall? A restarting host refuses for a while")
    fault_code = getattr(exc, "code", None) if isinstance(exc, WSManFaultError) else \
        getattr(exc, "wsman_fault_code", None)
    if refused_shell(exc):
        return ShellRefused(
            f"{where} refused the shell or command during {doing}: {text}", host=name,
            hint="a WinRS cmd shell is refused to a user allowed only PowerShell (or a JEA "
                 "endpoint) and under the policy AllowRemoteShellAccess = 0: use transport "
                 "psrp, which needs it only to push files and pushes through its session "
                 "without it. A refused PowerShell session needs the user in its session "
                 "configuration's permissions (Administrators, Remote Management Users)")
    if fault_code == SHELL_NOT_FOUND:
        return Unreachable(f"the remote shell on {where} is gone during {doing}", host=name,
                           hint="the host restarted or WinRM was restarted; reconnect")
    if isinstance(exc, ImportError):
        return TransportError(f"auth '{endpoint.auth}' is not available here: {text}",
                              host=name, hint=AUTH_HINTS.get(endpoint.auth))
    return TransportError(f"WS-Man with {where} failed during {doing}: {text}", host=name,
                          hint="see the message; the connection is reopened on the next call")


class WireCounter:
    """Counts one `requests.Session`'s HTTP requests and the bytes of their bodies as sent
    (after message encryption): a response hook, so every request the library makes counts."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes_sent = 0
        self._hooked: set[int] = set()

    def attach(self, session: requests.Session | None) -> None:
        """Count `session`'s requests from now on (once per session)."""
        if session is None or id(session) in self._hooked:
            return
        self._hooked.add(id(session))
        session.hooks["response"].append(self._count)

    def attach_direct(self, transport: Any) -> None:
        """Count from now on what `transport` (psrp_http.DirectHTTP) POSTs past requests."""
        if self.count not in transport.sent:
            transport.sent.append(self.count)

    def count(self, body: object) -> None:
        """One request sent, with `body`."""
        self.requests += 1
        self.bytes_sent += len(body) if isinstance(body, bytes | str) else 0

    def _count(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.count(response.request.body)


class WSManTransportBase(abc.ABC):
    """What psrp and winrm share: the host, its endpoint and redactor, and `put_file` as ONE
    `file_chunk` whose raw bytes go on the stdin of the receiver (a WinRS command started by
    `_receiver`, which each transport makes with its library). `last_push` holds the figures
    of the latest push (-vv prints them)."""

    def __init__(self, host: Host, redactor: Redactor | None = None) -> None:
        self.host = host
        self.endpoint: Endpoint = endpoint_of(host)
        self.redactor = redactor or Redactor()
        if host.connection.password is not None:
            self.redactor.add(host.connection.password)
        self.wire = WireCounter()
        self.last_push: PushStats | None = None
        self.receiver_refused = False    # the host refused the push receiver: push by calls
        self._watch = ExchangeWatch(self.endpoint)   # every HTTP exchange ends in time
        # which agent the target held at the last contact (psrp and winrm: one WinRM service)
        self._seen = bootstrap.Seen()
        self._where = f"{self.endpoint.address}:{self.endpoint.port}"

    @abc.abstractmethod
    def open(self) -> None:
        """Connect (each transport's own)."""

    @abc.abstractmethod
    def call(self, request: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Send one request; return its answer (each transport's own)."""

    @abc.abstractmethod
    def _receiver(self) -> StdinCommand:
        """Start the push receiver on the host (each transport's own)."""

    @abc.abstractmethod
    def _session(self) -> requests.Session | None:
        """The open HTTP session, for the wire counter (each transport's own)."""

    @abc.abstractmethod
    def _drop(self) -> None:
        """Forget the session after a transport error (each transport's own)."""

    def _guard(self, func: Callable[[], T], doing: str, in_flight: bool) -> T:
        """Run `func`, mapping library exceptions into errors.py once, here; after a
        transport error the session is dropped (`_drop`), to be rebuilt by the next call."""
        try:
            return func()
        except HostError:
            self._drop()
            raise
        except Exception as exc:  # mapped below; anything unknown stays a TransportError
            if not refused_shell(exc):    # a refusal is an answer: the session is fine
                self._drop()
            raise map_error(exc, self.endpoint, doing, in_flight, self.redactor) from exc

    def _connected(self) -> None:
        """Called once the HTTP session exists (after the connect): count its traffic, and
        stop requests from reading the proxy environment again on EVERY request (the
        libraries merged it when they built the session; the per-request re-read was 5-7 %
        of the controller's CPU in bench/sweep.py)."""
        session = self._session()
        if session is not None:
            session.trust_env = False
            self.wire.attach(session)

    def put_file(self, local: Path, remote: str, sha256: str) -> dict[str, Any]:
        """Push `local` to `remote`: file_begin, its bytes once-encoded on the receiver's
        stdin, file_end (sha256 checked on the target). When the host refuses the receiver
        (`ShellRefused`: its WinRS shell or command), the bytes go as `file_chunk` calls over
        the agent session instead, for this push and every later one of this transport: a
        refusal is the host's policy, asked once."""
        self.open()
        requests_before, sent_before = self.wire.requests, self.wire.bytes_sent
        started = time.monotonic()
        result = push_file(self, local, remote, sha256, host=self.host.name,
                           stream=None if self.receiver_refused else self._start_receiver)
        way = CALLS_WAY if self.receiver_refused else STREAM_WAY
        self.last_push = PushStats(local.stat().st_size, time.monotonic() - started,
                                   self.wire.requests - requests_before,
                                   self.wire.bytes_sent - sent_before, way)
        return result

    def _start_receiver(self) -> StdinCommand:
        """The receiver, remembering a refusal for the rest of this transport's life."""
        try:
            return self._receiver()
        except ShellRefused as refusal:
            self.receiver_refused = True
            log.info("%s: %s; pushes go as file_chunk calls", self.host.name, refusal)
            raise


class GuardedCommand:
    """A `StdinCommand` whose library errors are mapped by the transport's `guard` (errors.py
    once, at the boundary, in the host's thread); `close` never raises.

    `seal` may run in the push's own thread (push.OneAhead): it never raises, a failure to
    seal is raised by `post` in its turn. When the push stops with a Send encrypted and not
    posted, the connection has spent a sequence number the host never saw and can carry
    nothing more (sealed_sends): `close` then hands the command to `abandon`, which gives
    the connection up (its shells are deleted over a new one), instead of closing it on it."""

    def __init__(self, guard: Callable[[Callable[[], Any], str], Any],
                 start: Callable[[], StdinCommand],
                 abandon: Callable[[StdinCommand], None]) -> None:
        self._guard = guard
        self._abandon = abandon
        self._command: StdinCommand = guard(start, "start the push receiver")
        self._spent = 0      # encrypted Sends made (the sealing thread counts)
        self._posted = 0     # ... and handed to post (the host's thread counts)

    def seal(self, data: bytes, end: bool) -> _Deferred:
        """The Send of `data`, or the error making it."""
        try:
            sealed = self._command.seal(data, end)
        except Exception as error:   # raised by post, mapped there
            self._spent += 1          # it may have used the context: assume it did
            return _Deferred(None, error, spent=True)
        spent = bool(getattr(sealed, "spent", False))
        self._spent += spent
        return _Deferred(sealed, None, spent)

    def post(self, sealed: _Deferred) -> None:
        """Send it to the receiver's stdin."""
        self._posted += sealed.spent
        self._guard(lambda: self._command.post(sealed.take()), "push")

    def output(self) -> str:
        """Wait for the receiver's answer."""
        text: str = self._guard(self._command.output, "push")
        return text

    def close(self) -> None:
        """Free the receiver's command and shell (or give the connection up, see above)."""
        with contextlib.suppress(Exception):
            if self._spent > self._posted:
                self._abandon(self._command)
            else:
                self._command.close()


@dataclass(frozen=True)
class _Deferred:
    """What `GuardedCommand.seal` made: the command's Send, or the error making it."""

    sealed: Any
    error: Exception | None
    spent: bool

    def take(self) -> Any:
        """The Send; the error when there was one."""
        if self.error is not None:
            raise self.error
        return self.sealed
