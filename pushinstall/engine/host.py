"""One host's pipeline: connect -> gather -> plan -> apply -> (reboot) -> verify.

Runs synchronously in a worker thread (transports are synchronous); `engine.run_fleet` runs
many at once. Every outcome leaves as an event; secrets are masked before an event is made.

Rules a caller may rely on:
- gather and verify each cost ONE `batch` call carrying ONE `facts` request (plus any
  `script` probes); a step whose plan is not `ok` is probed again (one call) right before its
  apply when an earlier step changed the host, like DSC's Test before Set;
- check mode sends nothing but the gather;
- only transient errors are retried, and an apply is re-run only when every op it sent is
  idempotent;
- a failed step ends the host: later steps are not run.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pushinstall import events
from pushinstall.engine import secret_files
from pushinstall.engine.reboot import reboot_host
from pushinstall.engine.support import (
    Backoff,
    Deadline,
    Flow,
    HostAbort,
    HostLink,
    RetryPolicy,
    StepContext,
    collect_secrets,
    expected_found,
    is_transient,
)
from pushinstall.errors import (
    HostError,
    InputError,
    PushinstallError,
    TransportError,
    internal_error,
)
from pushinstall.model import Decision, Host, Playbook, Status, Step
from pushinstall.playbook import host_variables, render_step
from pushinstall.playbook.conditions import evaluate_when
from pushinstall.playbook.templating import Renderer
from pushinstall.remote.ops import batch, is_idempotent, request, result_of
from pushinstall.resources import RESOURCE_TYPES
from pushinstall.resources.asr_facts import SUMMARY_KEYS, summary_of
from pushinstall.resources.base import Applied, Plan, Probe, Resource
from pushinstall.secret import Redactor
from pushinstall.transports.base import Transport
from pushinstall.transports.deadline import io_deadline

TransportFactory = Callable[[Host], Transport]
NO_LOG = "(output hidden: no_log)"
OS_PROBE = "_os"


@dataclass
class HostOutcome:
    """How one host ended: final status, per-step statuses, per-status counts."""

    name: str
    status: Status = Status.OK
    message: str = ""
    counts: dict[Status, int] = field(default_factory=dict)
    steps: dict[str, Status] = field(default_factory=dict)
    duration: float = 0.0


@dataclass
class _StepState:
    index: int
    step: Step
    module: Resource | None = None
    args: dict[str, Any] | None = None
    error: str = ""
    probes: list[Probe] = field(default_factory=list)
    found: dict[str, Any] = field(default_factory=dict)
    plan: Plan | None = None
    skipped: bool = False


class HostPipeline:
    """The per-host pipeline. `run()` never raises for a host problem: it returns an outcome."""

    def __init__(
        self,
        host: Host,
        playbook: Playbook,
        *,
        check: bool,
        extra_vars: dict[str, Any],
        emit: events.Emit,
        transport_factory: TransportFactory,
        backoff: Backoff,
        stop_requested: Callable[[], bool] = lambda: False,
    ) -> None:
        self.host = host
        self.playbook = playbook
        self.settings = playbook.settings
        self.check = check
        self.extra_vars = extra_vars
        self._emit = emit
        self.stop_requested = stop_requested
        self.redactor = Redactor()
        self.deadline = Deadline(self.settings.host_timeout)
        self.retry = RetryPolicy(self.settings.retries, backoff, self.deadline)
        self.link = HostLink(host, transport_factory, self.retry, self.redactor)
        self.outcome = HostOutcome(host.name)
        self.os_fact: dict[str, Any] = {}
        # the facts summary's agent build and registered CS, as the newest gather saw them
        self.agent_facts: dict[str, str | None] = dict.fromkeys(SUMMARY_KEYS)
        self.variables: dict[str, Any] = {}
        self.changed_host = False

    # ---- plumbing -------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        return self.redactor.redact(text)

    def _record(self, state: _StepState, status: Status, diff: str = "", message: str = "",
                duration: float = 0.0, log_tail: list[str] | None = None) -> None:
        previous = self.outcome.steps.get(state.step.name)
        if previous:
            self.outcome.counts[previous] -= 1
        self.outcome.steps[state.step.name] = status
        self.outcome.counts[status] = self.outcome.counts.get(status, 0) + 1
        if state.step.no_log:
            diff, message = "", NO_LOG if message or diff else ""
            log_tail = []
        self._emit(events.StepResult(
            host=self.host.name, step=state.step.name, status=status,
            diff=self._redact(diff), message=self._redact(message), duration=duration,
            log_tail=[self._redact(str(line)) for line in log_tail or []],
        ))

    # ---- phases ---------------------------------------------------------------------------

    def _prepare(self) -> list[_StepState]:
        self.variables = host_variables(self.host, self.playbook, self.extra_vars)
        collect_secrets(self.redactor, self.variables, self.host.connection.password)
        renderer = Renderer(self.variables)
        states = []
        for index, step in enumerate(self.playbook.steps):
            state = _StepState(index, step, module=RESOURCE_TYPES.get(step.type))
            try:
                if state.module is None:
                    raise InputError(f"unknown resource type '{step.type}'")
                state.args = render_step(step, self.variables, renderer)
                collect_secrets(self.redactor, state.args)
                state.probes = list(state.module.probes(state.args))
            except PushinstallError as error:
                state.error = str(error)
            except Exception as error:  # a resource bug fails this step, not the fleet
                state.error = f"internal error: {type(error).__name__}: {error}"
            states.append(state)
        return states

    def _probe(self, states: list[_StepState]) -> None:
        """ONE batch: one `facts` request for every query, plus the script probes."""
        queries: list[dict[str, Any]] = [{"id": OS_PROBE, "kind": "os"}]
        scripts: list[tuple[_StepState, Probe]] = []
        for state in states:
            for probe in state.probes:
                if probe.query is not None:
                    queries.append({**probe.query, "id": f"{state.index}:{probe.id}"})
                elif probe.request is not None:
                    scripts.append((state, probe))
        requests = [request("facts", queries=queries)]
        requests += [p.request for _, p in scripts if p.request is not None]
        # Probes never change the host (base.Probe's contract), so the batch is safe to resend.
        answers = self.retry.run(lambda: self._send_probe_batch(requests))
        facts = result_of(answers[0], self.host.name)
        if isinstance(facts.get(OS_PROBE), dict) and "error" not in facts[OS_PROBE]:
            self.os_fact = facts[OS_PROBE]
        for state in states:
            state.found = {
                probe.id: facts.get(f"{state.index}:{probe.id}")
                for probe in state.probes if probe.query is not None
            }
        for state in states:
            for probe in state.probes:
                if probe.query is not None:
                    self.agent_facts.update(summary_of(probe.query, state.found[probe.id]))
        for (state, probe), answer in zip(scripts, answers[1:], strict=True):
            state.found[probe.id] = (
                answer.get("result") if answer.get("ok") else {"error": answer.get("error")}
            )

    def _send_probe_batch(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        result = self.link.call(batch(requests))
        if not isinstance(result, list) or len(result) != len(requests):
            raise HostError("the batch answer does not hold one answer per request",
                            host=self.host.name)
        return result

    def _plan(self, state: _StepState) -> None:
        assert state.module is not None and state.args is not None
        try:
            state.plan = state.module.plan(state.args, state.found)
        except Exception as error:  # a resource bug must not take the fleet down
            state.error = f"plan failed: {type(error).__name__}: {error}"

    def _facts_for_when(self, states: list[_StepState]) -> dict[str, Any]:
        return {"os": self.os_fact, "steps": {s.step.name: s.found for s in states}}

    def _decide(self, states: list[_StepState]) -> None:
        when_facts = self._facts_for_when(states)
        for state in states:
            if state.step.when:
                try:
                    state.skipped = not evaluate_when(state.step.when, self.variables,
                                                      when_facts)
                except InputError as error:
                    state.error = str(error)
                    continue
            if not state.skipped and not state.error:
                self._plan(state)

    # ---- apply ----------------------------------------------------------------------------

    def _apply(self, state: _StepState) -> Applied:
        """The step's apply; re-run on a transient error only when every op it sent is
        idempotent (a half-done install is never blindly started again)."""
        assert state.module is not None and state.args is not None
        module, args = state.module, state.args
        step_deadline = Deadline(state.step.timeout or self.settings.step_timeout)
        retries = state.step.retries if state.step.retries is not None else self.settings.retries
        contexts: list[StepContext] = []

        def attempt() -> Applied:
            if contexts:
                contexts[-1].log(f"transient error, retry {len(contexts)}/{retries}")
            contexts.append(StepContext(self.link, step_deadline))
            applied: Applied = module.apply(args, contexts[-1])
            return applied

        def resendable(error: BaseException) -> bool:
            sent = contexts[-1].sent
            return is_transient(error) and all(is_idempotent(request(op)) for op in sent)

        return self.retry.run(attempt, tries=1 + retries, retry_on=resendable)

    def _run_step(self, state: _StepState) -> Flow:
        """Apply one planned step; what the pipeline does next."""
        plan = state.plan
        assert plan is not None
        if plan.status != Decision.OK and self.changed_host:
            self._probe([state])
            self._plan(state)
            if state.error:
                self._record(state, Status.FAILED, message=state.error)
                return Flow.STOP
            plan = state.plan
            assert plan is not None
        if plan.status == Decision.OK:
            self._record(state, Status.OK, message=plan.reason)
            return Flow.NEXT
        if plan.status == Decision.FAIL:
            self._record(state, Status.FAILED, plan.diff, plan.reason or "not in desired state")
            return Flow.STOP
        started = time.monotonic()
        self._emit(events.StepStarted(host=self.host.name, step=state.step.name))
        try:
            applied = self._apply(state)
        except HostError as error:
            self._record(state, Status.FAILED, plan.diff, error.message,
                         time.monotonic() - started)
            return Flow.STOP
        except Exception as error:  # a resource bug: this host fails, the fleet goes on
            detail = traceback.format_exception_only(type(error), error)[-1].strip()
            self._record(state, Status.FAILED, plan.diff, f"internal error: {detail}")
            return Flow.STOP
        duration = time.monotonic() - started
        if applied.failed:
            # the installer's own last lines are what an admin needs to see next to the error
            tail = [*(applied.details.get("stderr_tail") or []),
                    *(applied.details.get("stdout_tail") or [])]
            self._record(state, Status.FAILED, plan.diff, applied.message, duration, tail[-20:])
            return Flow.STOP
        if applied.changed:
            self.changed_host = True
        status = Status.CHANGED if applied.changed else Status.OK
        self._record(state, status, plan.diff if applied.changed else "", applied.message,
                     duration)
        if applied.reboot:
            rebooted = reboot_host(self.link, self.settings.reboot, state.step, state.args or {},
                                   self.os_fact.get("last_boot_time", ""), self._emit)
            self.os_fact["last_boot_time"] = rebooted.boot_time
            if rebooted.message:
                self.outcome.message = rebooted.message
            return rebooted.flow
        return Flow.NEXT

    def _verify(self, states: list[_StepState]) -> None:
        """ONE batch re-probes every changed step; a step still not ok is failed."""
        changed = [s for s in states
                   if self.outcome.steps.get(s.step.name) == Status.CHANGED
                   and s.plan is not None and s.plan.verifiable]
        if not changed:
            return
        self._probe(changed)
        for state in changed:
            self._plan(state)
            plan = state.plan
            if state.error:
                self._record(state, Status.FAILED, message=f"verify: {state.error}")
            elif plan is not None and plan.status != Decision.OK:
                self._record(state, Status.FAILED, plan.diff,
                             f"verify: {expected_found(plan.diff) or plan.reason}")

    # ---- the whole host -------------------------------------------------------------------

    def _finish_status(self, forced: Status | None) -> Status:
        statuses = set(self.outcome.steps.values())
        if forced == Status.INTERRUPTED:
            return forced
        if forced == Status.FAILED or Status.FAILED in statuses:
            return Status.FAILED
        if self.check:
            return Status.DRIFTED if Status.DRIFTED in statuses else Status.COMPLIANT
        if forced:
            return forced
        return Status.CHANGED if Status.CHANGED in statuses else Status.OK

    def _check_mode(self, states: list[_StepState]) -> None:
        for state in states:
            if state.skipped:
                self._record(state, Status.SKIPPED)
            elif state.error:
                self._record(state, Status.FAILED, message=state.error)
            elif state.plan is not None:
                plan = state.plan
                drift = plan.status in (Decision.CHANGE, Decision.FAIL)
                if drift and not plan.drift_in_check:
                    self._record(state, Status.OK, plan.diff, f"warning: {plan.reason}")
                    continue
                self._record(state, Status.DRIFTED if drift else Status.OK, plan.diff,
                             plan.reason)

    def _run_mode(self, states: list[_StepState]) -> Status | None:
        for position, state in enumerate(states):
            if self.stop_requested():
                self.outcome.message = f"interrupted before step '{state.step.name}'"
                return Status.INTERRUPTED
            if self.deadline.expired:
                self.outcome.message = (f"host deadline ({self.settings.host_timeout:g}s) passed "
                                        f"before step '{state.step.name}'")
                return Status.FAILED
            if state.skipped:
                self._record(state, Status.SKIPPED)
                continue
            if state.error:
                self._record(state, Status.FAILED, message=state.error)
                return None
            flow = self._run_step(state)
            if flow is Flow.STOP:
                return None
            if flow is Flow.REBOOT_PENDING:
                for later in states[position + 1:]:
                    self._record(later, Status.SKIPPED, message="after reboot: stop")
                return Status.REBOOT_PENDING
        self._verify(states)
        return None

    def run(self) -> HostOutcome:
        """Do everything for this host; return how it ended. Every transport exchange ends by
        the host deadline (transports/deadline.py), so a host that stalls its answers cannot
        hold the run past it."""
        with io_deadline(self.deadline.at):
            return self._run_all()

    def _run_all(self) -> HostOutcome:
        started = time.monotonic()
        self._emit(events.HostStarted(host=self.host.name))
        forced: Status | None = None
        try:
            states = self._prepare()
            self.link.connect()
            self._clean_secret_files(reconnect=False)
        except TransportError as error:
            forced = Status.UNREACHABLE
            self.outcome.message = self._redact(str(error))
            self.outcome.counts = {Status.UNREACHABLE: 1}
        except PushinstallError as error:
            forced = Status.FAILED
            self.outcome.message = self._redact(str(error))
        except Exception as error:  # a bug (or an OS refusal) fails this host, not the fleet
            self.outcome.message = self._redact(internal_error(error))
            forced = Status.FAILED
        if forced is None:
            try:
                forced = self._work(states)
            except Exception as error:  # a bug must fail this host, not the fleet
                self.outcome.message = self._redact(internal_error(error))
                forced = Status.FAILED
            self._clean_secret_files(reconnect=True)
        self.outcome.status = (forced if forced == Status.UNREACHABLE
                               else self._finish_status(forced))
        self.outcome.duration = time.monotonic() - started
        os_fact = self.os_fact   # the report's facts summary: what the gather saw
        facts = {"os": os_fact.get("caption"), "os_version": os_fact.get("version"),
                 "powershell": os_fact.get("powershell_version"),
                 **self.agent_facts} if os_fact else {}
        self._emit(events.HostFinished(
            host=self.host.name, status=self.outcome.status, counts=dict(self.outcome.counts),
            message=self.outcome.message, duration=self.outcome.duration, facts=facts,
        ))
        return self.outcome

    def _clean_secret_files(self, reconnect: bool) -> None:
        """Remove the secret files a step (now, or in an earlier run) could not remove from
        this host (engine/secret_files.py); `reconnect` after the work closed the link. One
        that still cannot be removed is a warning: it stays noted for the next time."""
        left = secret_files.pending(self.host.name)
        if not left or self.check:
            return
        path = left[0]
        try:
            if reconnect:
                self.link.connect()
            for path in left:
                self.link.call(request("remove_file", path=path), 60.0)
                secret_files.discard(self.host.name, path)
        except Exception as error:
            self._emit(events.HostWarning(host=self.host.name, message=self._redact(
                f"the secret file {path} may still be on the host ({error}); pushinstall "
                "removes it the next time it reaches this host")))
        finally:
            if reconnect:
                self.link.close()

    def _work(self, states: list[_StepState]) -> Status | None:
        try:
            self._probe([s for s in states if not s.error])
            self._decide(states)
            if self.check:
                self._check_mode(states)
                return None
            return self._run_mode(states)
        except HostAbort as abort:
            self.outcome.message = self._redact(abort.message)
            return abort.status
        except TransportError as error:
            self.outcome.message = self._redact(str(error))
            if not self.outcome.steps:
                self.outcome.counts = {Status.UNREACHABLE: 1}
                return Status.UNREACHABLE
            return Status.FAILED
        except HostError as error:
            self.outcome.message = self._redact(str(error))
            return Status.FAILED
        finally:
            self.link.close()
