"""Restart a host mid-run and wait for it (DSC: RebootNodeIfNeeded + ContinueConfiguration).

Policy (playbook `settings.reboot`):
- `mode: never` — nothing is restarted; the host ends `reboot_pending` and its later steps are
  reported skipped. That is a warning for an admin to act on, not a failure: exit code 0, the
  recap shows the status. (The change itself was made; it completes at the next boot.)
- `mode: if_needed` — send `reboot`, close the connection, then poll with backoff: reconnect
  and read `os.last_boot_time` until it differs from the time before the restart. Past
  `timeout` seconds (a `reboot` step's own `timeout` wins), or the host deadline, the host
  ends `failed`; each probe gets a real timeout, and one probe always follows the deadline, so
  a host that did come back is never reported as not.
- `after_reboot: continue` goes on with the next step; `stop` ends the host `reboot_pending`
  once it is back (run again to continue).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from tenacity import RetryError

from pushinstall import events
from pushinstall.engine.support import Deadline, Flow, HostAbort, HostLink, RetryPolicy
from pushinstall.errors import TransportError
from pushinstall.model import RebootPolicy, Status, Step
from pushinstall.remote.ops import request, result_of

PROBE_TIMEOUT = (5.0, 30.0)   # a post-reboot probe's timeout: at least, at most (seconds)


@dataclass
class Rebooted:
    """How a reboot ended: what the pipeline does next, why, and the host's boot time."""

    flow: Flow
    message: str = ""
    boot_time: str = ""


def _boot_time(link: HostLink, transport: Any, timeout: float) -> str:
    answer = transport.call(request("facts", queries=[{"id": "os", "kind": "os"}]),
                            timeout=timeout)
    fact = result_of(answer, link.host.name).get("os") or {}
    if fact.get("boot_finished") is False:
        return ""       # a new boot, but LogonUI has not recreated AutoLogonChecked yet
    return str(fact.get("last_boot_time", ""))


def wait_for_new_boot(link: HostLink, before: str, wait: Deadline) -> str:
    """Reconnect until the host answers with a boot time other than `before`; leaves the new
    transport on `link` and returns the new boot time. Raises `HostAbort` past `wait`."""
    last = ["no answer"]

    def probe() -> str:
        low, high = PROBE_TIMEOUT
        transport = link.open_once()
        try:
            after = _boot_time(link, transport, max(low, min(high, wait.remaining)))
        except TransportError as error:
            last[0] = str(error)
            transport.close()
            raise
        if after and after != before:
            link.transport = transport
            return after
        last[0] = f"boot time still {after}"
        transport.close()
        return ""

    policy = RetryPolicy(0, link.retry.backoff, wait)
    time.sleep(min(link.retry.backoff.delay(1), wait.remaining))   # it is going down now
    try:
        return policy.run(probe, until=bool,
                          retry_on=lambda error: isinstance(error, TransportError))
    except (RetryError, TransportError):
        raise HostAbort(Status.FAILED, f"did not come back within {wait.seconds:g}s after "
                                       f"reboot ({last[0]})") from None


def reboot_host(link: HostLink, policy: RebootPolicy, step: Step, args: dict[str, Any],
                boot_time: str, emit: events.Emit) -> Rebooted:
    """Restart the host for `step` per `policy`; `boot_time` is the one gathered before."""
    if policy.mode == "never":
        return Rebooted(Flow.REBOOT_PENDING, f"step '{step.name}' needs a reboot (policy: never)",
                        boot_time)
    started = time.monotonic()
    own = step.type == "reboot"
    timeout = float(args.get("timeout") or policy.timeout) if own else policy.timeout
    reason = str((args.get("reason") if own else None) or f"pushinstall: {step.name}")
    result = link.call(request("reboot", reason=reason))
    before = (result or {}).get("boot_time_before") or boot_time
    link.close()
    after = wait_for_new_boot(link, before, Deadline(min(timeout, link.deadline.remaining)))
    emit(events.RebootEvent(
        host=link.host.name, step=step.name, boot_time_before=before, boot_time_after=after,
        duration=time.monotonic() - started,
    ))
    if policy.after_reboot == "stop":
        return Rebooted(Flow.REBOOT_PENDING,
                        f"rebooted for step '{step.name}'; after_reboot: stop", after)
    return Rebooted(Flow.NEXT, "", after)
