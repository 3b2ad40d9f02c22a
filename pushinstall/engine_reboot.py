"""Restart a host mid-run and wait for it (DSC: RebootNodeIfNeeded + ContinueConfiguration).

Policy (playbook `settings.reboot`):
- `mode: never` — nothing is restarted; the host ends `reboot_pending` and its later steps are
  reported skipped. That is a warning for an admin to act on, not a failure: exit code 0, the
  recap shows the status. (The change itself was made; it completes at the next boot.)
- `mode: if_needed` — send `reboot`, close the connection, then poll with backoff: reconnect
  and read `os.last_boot_time` until it differs from the time before the restart. Past
  `timeout` seconds (a `reboot` step's own `timeout` wins) the host ends `failed`.
- `after_reboot: continue` goes on with the next step; `stop` ends the host `reboot_pending`
  once it is back (run again to continue).
"""

from __future__ import annotations

import time
from typing import Any

from pushinstall import events
from pushinstall.engine_support import Deadline, HostAbort
from pushinstall.errors import TransportError
from pushinstall.playbook import Step
from pushinstall.remote.ops import request, result_of


def _boot_time(pipeline: Any, transport: Any, timeout: float | None) -> str:
    answer = transport.call(request("facts", queries=[{"id": "os", "kind": "os"}]),
                            timeout=timeout)
    fact = result_of(answer, pipeline.host.name).get("os") or {}
    if fact.get("boot_finished") is False:
        return ""       # a new boot, but LogonUI has not recreated AutoLogonChecked yet
    return str(fact.get("last_boot_time", ""))


def _wait_for_new_boot(pipeline: Any, before: str, deadline: Deadline) -> tuple[Any, str]:
    """Reconnect until the host answers with a boot time other than `before`."""
    attempt = 0
    last_error = "no answer"
    while not deadline.expired:
        attempt += 1
        time.sleep(min(pipeline.backoff.delay(attempt), deadline.remaining))
        transport = pipeline.factory(pipeline.host)
        try:
            transport.open()
            after = _boot_time(pipeline, transport, deadline.bound(None))
        except TransportError as error:
            last_error = str(error)
            transport.close()
            continue
        if after and after != before:
            return transport, after
        last_error = f"boot time still {after}"
        transport.close()
    raise HostAbort(
        events.FAILED,
        f"did not come back within {deadline.seconds:g}s after reboot ({last_error})",
    )


def reboot_host(pipeline: Any, step: Step, args: dict[str, Any]) -> str:
    """Restart the host for `step` per the policy; return `next` or `reboot_pending`."""
    policy = pipeline.settings.reboot
    if policy.mode == "never":
        pipeline.outcome.message = f"step '{step.name}' needs a reboot (policy: never)"
        return events.REBOOT_PENDING
    started = time.monotonic()
    timeout = float(args.get("timeout") or policy.timeout) if step.type == "reboot" \
        else policy.timeout
    reason = args.get("reason") if step.type == "reboot" else None
    before = pipeline.os_fact.get("last_boot_time", "")
    reboot_args: dict[str, Any] = {"reason": str(reason or f"pushinstall: {step.name}")}
    result = pipeline._call(request("reboot", **reboot_args))
    before = (result or {}).get("boot_time_before") or before
    pipeline.transport.close()
    pipeline.transport = None
    wait = Deadline(min(timeout, pipeline.deadline.remaining))
    pipeline.transport, after = _wait_for_new_boot(pipeline, before, wait)
    pipeline.os_fact["last_boot_time"] = after
    pipeline._emit(events.RebootEvent(
        host=pipeline.host.name, step=step.name, boot_time_before=before, boot_time_after=after,
        duration=time.monotonic() - started,
    ))
    if policy.after_reboot == "stop":
        pipeline.outcome.message = f"rebooted for step '{step.name}'; after_reboot: stop"
        return events.REBOOT_PENDING
    return "next"
