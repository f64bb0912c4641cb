"""The engine: advance one request through its steps, as far as it can go right now.

One pass loads the request, its steps and its audit records once, and starts each step the moment its
own prerequisites are done (shared/engine/plan.py), writing each step's outcome as soon as it has it.
A step that waits on Azure never waits itself: it says when to look again. The pass holds a short wait
(``timings.hold``) and starts the step again then; a longer one ends the pass, and the caller (the
queue worker, or the CLI) calls ``advance`` again at that time. A crash anywhere loses nothing: the next
pass observes the tenant again, and the steps act only on a difference.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from azure.core.exceptions import ServiceRequestError

from shared import telemetry
from shared.azure.arm import ArmGateway
from shared.azure.graph import GraphGateway
from shared.engine.context import AuditTrail, Observation, PassLedgers, StepContext, StepResult, Verdict
from shared.engine.journal import Journal
from shared.engine.plan import plan_for
from shared.engine.privileges import drift_of, observe_privileges
from shared.engine.rollback import Rollback, roll_back
from shared.engine.step import Step, backoff
from shared.errors import (
    ConcurrencyError,
    ErrorCategory,
    ExomiError,
    InternalError,
    OperationFailed,
    PolicyRefusal,
    RecordedError,
    Transient,
)
from shared.findings import Finding
from shared.ids import ResourceId, parse_resource_id
from shared.models import Channel, Operation, ProvisionRequest, RequestStatus, StepStatus, TargetStatus
from shared.ownership import GrantKind, Ledger
from shared.policy import expires_at_of
from shared.settings import EngineTimings, ExchangeEnvironment
from shared.state.records import (
    AuditRecord,
    Grants,
    ModuleGrant,
    RefusalRecord,
    RequestRecord,
    StepRecord,
    TargetRecord,
    utcnow,
)
from shared.state.store import StateStore

log = logging.getLogger("exomi.engine")
FINISHED = {StepStatus.DONE, StepStatus.SKIPPED}
LEARNED_FRESH_SECONDS = 300.0  # how long a pass relies on the learned durations it read
# The steps of a provision that change what the identity holds: once they are done, the look for extra
# privileges (_privilege_findings) starts, while verification still waits for its job or Run Command.
GRANT_STEPS = frozenset({"app-role", "entra-role"})
KEPT_REQUESTS = 1000  # waiting requests whose steps and audit a process keeps between passes
StepListener = Callable[[StepRecord], Awaitable[None]]


@dataclass(frozen=True)
class _Kept:
    """A request's steps and audit as the last pass in this process wrote them, and its ETag after it."""

    etag: str
    steps: dict[str, StepRecord]
    audit: list[AuditRecord]


@dataclass
class _Outcome:
    step: Step
    record: StepRecord
    error: ExomiError | None = None


def _on_hybrid_worker(record: RequestRecord) -> bool:
    request = record.request
    return isinstance(request, ProvisionRequest) and request.hybrid_worker_group is not None


def _discard(task: asyncio.Task[Any] | None) -> None:
    """A look the pass started and no longer needs (its request fails, waits or was taken over)."""
    if task is not None and not task.done():
        task.cancel()


def _memo(record: StepRecord | None) -> dict[str, Any]:
    observed = record.observed if record is not None and isinstance(record.observed, dict) else {}
    return dict(observed.get("memo") or {})


def _facts(record: StepRecord | None) -> dict[str, Any]:
    observed = record.observed if record is not None and isinstance(record.observed, dict) else {}
    return dict(observed.get("facts") or {})


class Engine:
    def __init__(
        self,
        state: StateStore,
        arm: ArmGateway,
        graph: GraphGateway,
        timings: EngineTimings,
        *,
        roll_back_on_failure: bool = True,
        remove_unmanaged_grants: bool = False,
        exchange_environment: ExchangeEnvironment = ExchangeEnvironment.DEFAULT,
    ) -> None:
        self.state = state
        self.exchange_environment = exchange_environment  # settings: the tenant's Microsoft 365 cloud
        self.arm = arm
        self.graph = graph
        self.configured = timings  # the settings
        self.timings = timings  # the settings, with learned durations where a setting says "not known"
        self._learned_until = 0.0  # monotonic time until which the learned durations are fresh
        self._kept: dict[str, _Kept] = {}  # by request id, oldest first (Engine._keep)
        self.roll_back_on_failure = roll_back_on_failure  # policy on_failure
        self.remove_unmanaged_grants = remove_unmanaged_grants  # policy remove_unmanaged_grants

    async def advance(
        self,
        request_id: str,
        *,
        take_over: bool = False,
        on_step: StepListener | None = None,
        record: RequestRecord | None = None,
    ) -> RequestRecord:
        """Runs what can run now; returns the request as stored afterwards. A pass holds the request
        for ``timings.lease`` seconds (renewed while it works); a pass that finds another one holding it
        does nothing, unless ``take_over`` (an operator knows the other one is dead). ``on_step`` hears of
        each step's outcome as it is known (the CLI's progress; it is written at the pass's next
        checkpoint). ``record``: the request as the caller just read it (or the last pass left it), not
        read again; if it changed since, the claim's ETag fails and the pass returns it as it is now.
        One trace per pass: its steps and their Azure calls nest under its span."""
        if record is not None and record.id != request_id:
            raise ValueError(f"the record of request {record.id} given for request {request_id}")
        with telemetry.span("exomi.pass", {telemetry.REQUEST_ID: request_id}) as current:
            record = await self._advance(request_id, take_over=take_over, on_step=on_step, given=record)
            telemetry.annotate(
                current, {**telemetry.request_attributes(record), telemetry.OUTCOME: record.status}
            )
            return record

    async def _advance(
        self, request_id: str, *, take_over: bool, on_step: StepListener | None, given: RequestRecord | None
    ) -> RequestRecord:
        record = given or await self.state.requests.get(request_id)
        if not record.status.active or record.status is RequestStatus.AWAITING_APPROVAL:
            return record  # ended, or nothing may happen before an approver approves it
        if held_by_a_pass(record) and not take_over:
            return record  # another pass works on it (a duplicate work item): it re-queues it if needed
        target = parse_resource_id(record.target)
        plan = plan_for(record.operation, target.kind, on_hybrid_worker=_on_hybrid_worker(record))
        await self._learn()
        # Claim it (ETag: of two passes starting at once, on one instance or two, only one writes; the
        # other returns the request as the winner left it, held, and works on nothing).
        claimed: RequestRecord | None
        if record.status is RequestStatus.QUEUED:
            # Never claimed before (queued is how a request is recorded, or approved): no pass has
            # written a step or a change of it, so there is nothing of it to read but its target.
            claimed, target_record = await asyncio.gather(
                self._claim(record), self.state.targets.get(target.key)
            )
            steps: list[StepRecord] = []
            audit: list[AuditRecord] = []
        elif (kept := self._kept.pop(request_id, None)) is not None and kept.etag == record.etag:
            # The last pass of this request ran in this process and nobody has written the request since
            # (every pass claims it, which changes its ETag): its steps and audit are as that pass left them.
            steps, audit = list(kept.steps.values()), kept.audit
            target_record = await self.state.targets.get(target.key)  # reconciliation may write it
            claimed = await self._claim(record)
        else:
            steps, audit, target_record = await asyncio.gather(
                self.state.steps.list(request_id),
                self.state.audit.list_for_request(request_id),
                self.state.targets.get(target.key),
            )
            failed = next((s for s in steps if s.status is StepStatus.FAILED and s.name in plan.needs), None)
            if failed is not None:  # a pass stopped between a step's failure and the request's end
                return await self._fail(
                    record, RecordedError(failed.error or {"message": failed.message}), target_record
                )
            claimed = await self._claim(record)
        if claimed is None:
            return await self.state.requests.get(request_id)
        record = claimed
        journal = Journal(self.state, {s.name: s for s in steps}, audit)
        stored = journal.steps  # each step as this pass knows it, written or not
        ledgers = PassLedgers(self.state)
        stored_target = target_record  # the target's record as stored; target_record: as this pass has it
        facts: dict[str, Any] = {}
        for step in plan.steps:
            if self._status(stored, step.name) in FINISHED:
                facts.update(_facts(stored[step.name]))
        facts["changed"] = any(s.action == "changed" for s in stored.values())
        deadline = time.monotonic() + self.timings.advance_budget
        hold = min(self.timings.hold, self.timings.lease / 2)  # a held wait never outlives the lease

        # The scheduler: a step starts the moment its own prerequisites are done (graphlib over the
        # plan's edges); a step that waits says when to look again, and is started again at that time
        # while the pass holds the request, or by the next pass.
        sorter = plan.sorter()
        sorter.prepare()
        ready: set[str] = set()  # prerequisites done, not running, not finished
        running: dict[asyncio.Task[_Outcome], str] = {}
        failures: dict[str, ExomiError] = {}  # the first in plan order ends the request

        privileges: asyncio.Task[list[Finding] | None] | None = None  # the look for extra privileges

        def start_what_is_due() -> None:
            while True:
                ready.update(sorter.get_ready())
                finished = [name for name in ready if self._status(stored, name) in FINISHED]
                if not finished:
                    break
                for name in finished:
                    ready.discard(name)
                    sorter.done(name)
            if failures or time.monotonic() > deadline:
                return  # let what runs finish; start nothing new
            now = utcnow()
            for name in sorted(ready, key=plan.index):
                previous = stored.get(name)
                if previous is None or previous.check_again_at is None or previous.check_again_at <= now:
                    ready.discard(name)
                    task = asyncio.create_task(
                        self._run(
                            plan.step(name),
                            plan.index(name),
                            record,
                            target,
                            previous,
                            dict(facts),
                            target_record,
                            journal,
                            ledgers,
                        )
                    )
                    running[task] = name

        while True:
            start_what_is_due()
            if not running:
                if failures or not ready or time.monotonic() > deadline:
                    break
                due = min(stored[name].check_again_at or utcnow() for name in ready)
                delay = max((due - utcnow()).total_seconds(), 0.0)
                if delay > hold or time.monotonic() + delay > deadline:
                    break
                # Hold the wait in this pass: the request says it waits (and can be cancelled meanwhile),
                # with what the pass found written first.
                stored_target = await self._checkpoint(journal, target_record, stored_target)
                target_record = stored_target
                record = await self._update(
                    record,
                    status=RequestStatus.WAITING,
                    check_again_at=due,
                    message=_waiting_message(stored, ready),
                    lease_until=self._lease(),
                )
                await asyncio.sleep(delay)
                claimed = await self._claim(record)  # fails if it was cancelled or taken over meanwhile
                if claimed is None:
                    _discard(privileges)
                    return await self.state.requests.get(request_id)
                record = claimed
                continue
            # Wake for the first step to end, or for a waiting step that falls due meanwhile.
            wake = self.timings.lease / 3
            if ready and not failures:
                due = min(stored[name].check_again_at or utcnow() for name in ready)
                wake = min(wake, max((due - utcnow()).total_seconds(), 0.0))
            finished, _ = await asyncio.wait(running, timeout=wake, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                name = running.pop(task)
                outcome = task.result()  # _run turns every exception into an outcome
                if outcome.record.status in FINISHED:
                    facts.update(_facts(outcome.record))
                    sorter.done(name)  # its dependents are ready now
                elif outcome.record.status is StepStatus.WAITING:
                    ready.add(name)
                if outcome.record.action == "changed":
                    facts["changed"] = True
                if outcome.error is not None:
                    failures[name] = outcome.error
                if on_step is not None:
                    await on_step(outcome.record)
            if finished:  # what the steps found, for the steps that start next (written at a checkpoint)
                target_record = await self._target_after(
                    record, target, facts, target_record, ledgers, succeeded=False
                )
                if (
                    privileges is None
                    and record.operation is Operation.PROVISION
                    and not failures
                    and plan.needs.keys() >= GRANT_STEPS
                    and all(self._status(stored, name) in FINISHED for name in GRANT_STEPS)
                    and target_record is not None
                    and target_record.principal_id is not None
                ):
                    privileges = asyncio.create_task(
                        self._observe_privileges(record, target_record.principal_id, ledgers)
                    )
            if (
                record.lease_until is not None
                and (record.lease_until - utcnow()).total_seconds() < self.timings.lease / 2
            ):
                # The heartbeat of a long pass, and a checkpoint: what it found so far is written.
                stored_target = await self._checkpoint(journal, target_record, stored_target)
                target_record = stored_target
                record = await self._update(record, lease_until=self._lease())

        await journal.flush()  # the steps' outcomes and the changes' results, before the request moves on
        if failures:
            _discard(privileges)
            first = min(failures, key=plan.index)
            stored_target = await self._store_target(target_record, stored_target)
            return await self._fail(record, failures[first], stored_target)
        if all(self._status(stored, step.name) in FINISHED for step in plan.steps):
            record = _with_end_of_access(record)
            target_record = await self._target_after(
                record, target, facts, target_record, ledgers, succeeded=True
            )
            summary = "; ".join(stored[s.name].message or s.title for s in plan.steps)
            if record.operation is Operation.PROVISION and target_record is not None:
                target_record, findings = await self._privilege_findings(record, target_record, privileges)
                if findings:
                    summary += f". {len(findings)} finding(s): " + "; ".join(
                        f"[{f.severity}] {f.detail}" for f in findings
                    )
            await self._store_target(target_record, stored_target)
            status = (
                RequestStatus.REVOKED if record.operation is Operation.REVOKE else RequestStatus.SUCCEEDED
            )
            return await self.state.finish(record, status, message=summary)
        _discard(privileges)  # the next pass looks again, at its end
        due_times = [stored[name].check_again_at if name in stored else None for name in ready]
        check_again_at = min((t or utcnow() for t in due_times), default=utcnow())
        await self._store_target(target_record, stored_target)
        record = await self._update(
            record,
            status=RequestStatus.WAITING,
            check_again_at=check_again_at,
            message=_waiting_message(stored, ready),
            lease_until=None,
        )
        self._keep(record, journal)
        return record

    def _keep(self, record: RequestRecord, journal: Journal) -> None:
        """What the next pass of this request needs if it runs in this process: the steps and audit as
        this pass wrote them, valid while the request's ETag is the one this pass left it with."""
        while len(self._kept) >= KEPT_REQUESTS:
            self._kept.pop(next(iter(self._kept)))  # the oldest
        if record.etag is not None:
            self._kept[record.id] = _Kept(record.etag, dict(journal.steps), list(journal.audit.values()))

    async def observe(
        self, record: RequestRecord, target_record: TargetRecord | None
    ) -> tuple[list[Observed], dict[str, Any]]:
        """Every step's observation of the tenant, in plan order, writing nothing (plan and diagnose).
        A step whose prerequisite would change first is not looked at: what it sees is not known yet."""
        target = parse_resource_id(record.target)
        plan = plan_for(record.operation, target.kind, on_hybrid_worker=_on_hybrid_worker(record))
        facts: dict[str, Any] = {"changed": False}  # becomes True once a step would change something
        unsettled: set[str] = set()  # steps whose facts later steps cannot rely on
        results: list[Observed] = []
        for step in plan.in_order():
            waiting_on = sorted(plan.needs[step.name] & unsettled)
            if waiting_on:
                results.append(Observed(step, None, None, waiting_on))
                unsettled.add(step.name)
                continue
            audit = AuditTrail(None, record, step.name, 0)  # observe writes none
            ctx = self._context(record, target, facts, target_record, audit, PassLedgers(self.state))
            try:
                observation = await step.observe(ctx)
            except ExomiError as error:
                results.append(Observed(step, None, error, []))
                unsettled.add(step.name)
                continue
            facts.update(observation.facts)
            results.append(Observed(step, observation, None, []))
            if observation.verdict in (Verdict.MISSING, Verdict.WRONG, Verdict.PENDING):
                unsettled.add(step.name)
                facts["changed"] = True
        return results, facts

    def _context(
        self,
        request: RequestRecord,
        target: ResourceId,
        facts: dict[str, Any],
        target_record: TargetRecord | None,
        audit: AuditTrail,
        ledgers: PassLedgers,
        memo: dict[str, Any] | None = None,
    ) -> StepContext:
        """What a step sees: the request, the gateways, the facts of the steps before it (a copy)."""
        return StepContext(
            request=request,
            decision=request.decision,
            target=target,
            arm=self.arm,
            graph=self.graph,
            state=self.state,
            timings=self.timings,
            exchange_environment=self.exchange_environment,
            facts=dict(facts),
            target_record=target_record,
            audit=audit,
            ledgers=ledgers,
            memo=memo if memo is not None else {},
        )

    @staticmethod
    def _status(stored: dict[str, StepRecord], name: str) -> StepStatus:
        record = stored.get(name)
        return record.status if record is not None else StepStatus.PENDING

    async def _run(
        self,
        step: Step,
        index: int,
        request: RequestRecord,
        target: ResourceId,
        previous: StepRecord | None,
        facts: dict[str, Any],
        target_record: TargetRecord | None,
        journal: Journal,
        ledgers: PassLedgers,
    ) -> _Outcome:
        """One run of a step, in a span of its own (a child of the pass's) with its duration recorded."""
        started = time.monotonic()
        dimensions = {**telemetry.request_attributes(request), telemetry.STEP: step.name}
        with telemetry.span(f"exomi.step {step.name}", dimensions) as current:
            outcome = await self._run_step(
                step, index, request, target, previous, facts, target_record, journal, ledgers
            )
            telemetry.annotate(
                current, {telemetry.OUTCOME: outcome.record.status, telemetry.ACTION: outcome.record.action}
            )
            if outcome.error is not None:
                telemetry.failed(current, outcome.error.code)
        telemetry.record_step(
            step.name, time.monotonic() - started, outcome.record.status.value, target.kind.value
        )
        return outcome

    async def _run_step(
        self,
        step: Step,
        index: int,
        request: RequestRecord,
        target: ResourceId,
        previous: StepRecord | None,
        facts: dict[str, Any],
        target_record: TargetRecord | None,
        journal: Journal,
        ledgers: PassLedgers,
    ) -> _Outcome:
        attempts = previous.attempts if previous is not None else 0
        memo = _memo(previous)
        audit = AuditTrail(journal, request, step.name, attempts)
        ctx = self._context(request, target, facts, target_record, audit, ledgers, memo)
        base = StepRecord(
            request_id=request.id,
            name=step.name,
            index=index,
            attempts=attempts + 1,
            etag=previous.etag if previous else None,
        )
        try:
            result: StepResult = await step.apply(ctx)
        except ExomiError as error:
            return await self._failed_or_waiting(step, base, memo, error, ctx)
        except ServiceRequestError as error:
            # A connection that dropped before an answer (storage closing an idle keep-alive connection, a
            # network blip): the SDKs do not retry POST and PATCH then. Steps observe before they act, so
            # the step runs again later rather than failing the request.
            log.warning("step %s of request %s: connection failed: %s", step.name, request.id, error)
            transient = Transient(f"{step.title}: the connection failed ({error}); retrying")
            return await self._failed_or_waiting(step, base, memo, transient, ctx)
        except Exception as error:  # noqa: BLE001 - a bug must end the request, not loop forever
            log.exception("step %s of request %s crashed", step.name, request.id)
            return await self._failed_or_waiting(
                step, base, memo, InternalError(f"{step.title}: {type(error).__name__}: {error}"), ctx
            )
        status = StepStatus.DONE if result.done else StepStatus.WAITING
        # A change of this request's that an earlier run made but did not get to record is a change too
        # (the verification after it must not be skipped).
        changed = (
            result.changed
            or audit.found_own_change
            or (previous is not None and previous.action == "changed")
        )
        check_again_at = (
            None if result.done else utcnow() + timedelta(seconds=result.check_again_in or self.timings.poll)
        )
        record = base.model_copy(
            update={
                "status": status,
                "action": "changed" if changed else "none",
                "message": result.message,
                "observed": {"facts": result.facts, "memo": result.memo},
                "check_again_at": check_again_at,
                "error": None,
            }
        )
        log.info("request %s step %s: %s (%s)", request.id, step.name, status.value, result.message)
        for timing, seconds in result.took.items():
            await self._observe_duration(timing, seconds)
        return _Outcome(step, journal.step(record))

    async def _learn(self) -> None:
        """Reads what earlier waits took, at most every LEARNED_FRESH_SECONDS: an ``expected_*`` timing
        that the settings leave at 0 ("not known") takes the learned value."""
        if time.monotonic() < self._learned_until:
            return
        try:
            learned = await self.state.durations.learned()
        except Exception as error:  # noqa: BLE001 - pacing without them is slower, not wrong
            log.warning("could not read the learned durations: %s", error)
            learned = {}
        self._learned_until = time.monotonic() + LEARNED_FRESH_SECONDS
        self.timings = self.configured.with_learned(learned)

    async def _observe_duration(self, timing: str, seconds: float) -> None:
        try:
            await self.state.durations.observe(timing, seconds)
        except Exception as error:  # noqa: BLE001 - an estimate that is not stored is no loss
            log.warning("could not store a learned duration (%s): %s", timing, error)

    async def _failed_or_waiting(
        self, step: Step, base: StepRecord, memo: dict[str, Any], error: ExomiError, ctx: StepContext
    ) -> _Outcome:
        """Transient and replication errors wait (with backoff, replication within a window); final ones fail."""
        if error.category in (ErrorCategory.TRANSIENT, ErrorCategory.REPLICATION):
            window = self.timings.replication_window if error.category is ErrorCategory.REPLICATION else None
            since = datetime.fromisoformat(
                memo.setdefault(f"{error.category.value}_since", utcnow().isoformat())
            )
            if window is None or utcnow() - since < timedelta(seconds=window):
                retries = int(memo.get("retries", 0))
                memo["retries"] = retries + 1
                delay = getattr(error, "retry_after", None) or backoff(ctx, retries)
                record = base.model_copy(
                    update={
                        "status": StepStatus.WAITING,
                        "message": f"retrying: {error.message}",
                        "observed": {"facts": {}, "memo": memo},
                        "check_again_at": utcnow() + timedelta(seconds=delay),
                        "error": error.to_dict(),
                    }
                )
                log.info("request %s step %s waits: %s", base.request_id, step.name, error.message)
                return _Outcome(step, self._keep_step(ctx, record))
            minutes = int((utcnow() - since).total_seconds() // 60)
            error = OperationFailed(
                step.title, f"{error.message} (still after {minutes} minutes of retrying)"
            )
        record = base.model_copy(
            update={
                "status": StepStatus.FAILED,
                "message": error.message,
                "observed": {"facts": {}, "memo": memo},
                "error": error.to_dict(),
            }
        )
        log.warning("request %s step %s failed: %s", base.request_id, step.name, error.message)
        return _Outcome(step, self._keep_step(ctx, record), error)

    async def _claim(self, record: RequestRecord) -> RequestRecord | None:
        """Mark the request running under this pass's lease (ETag-guarded); None when another pass wrote
        it first (it holds the request now)."""
        try:
            return await self._update(
                record,
                status=RequestStatus.RUNNING,
                check_again_at=None,
                message="working",
                lease_until=self._lease(),
            )
        except ConcurrencyError:
            return None

    def _lease(self) -> datetime:
        return utcnow() + timedelta(seconds=self.timings.lease)

    @staticmethod
    def _keep_step(ctx: StepContext, record: StepRecord) -> StepRecord:
        """The step's outcome, into the pass's journal (written at its next checkpoint)."""
        journal = ctx.audit.journal
        if journal is None:
            raise RuntimeError(f"step {record.name} ran while only observing")
        return journal.step(record)

    async def _checkpoint(
        self, journal: Journal, target_record: TargetRecord | None, stored_target: TargetRecord | None
    ) -> TargetRecord | None:
        """Write what the pass found so far: the journal, then the target's record (if it changed)."""
        await journal.flush()
        return await self._store_target(target_record, stored_target)

    async def _store_target(
        self, target_record: TargetRecord | None, stored_target: TargetRecord | None
    ) -> TargetRecord | None:
        """The target's record as this pass has it, written if it differs from the stored one: once
        per pass (and at a checkpoint), not after every step."""
        if target_record is None or target_record == stored_target:
            return stored_target
        return await self.state.targets.save(target_record)

    async def _update(self, record: RequestRecord, **changes: Any) -> RequestRecord:
        return await self.state.requests.update(record.model_copy(update=changes))

    async def _fail(
        self, record: RequestRecord, error: ExomiError, target_record: TargetRecord | None
    ) -> RequestRecord:
        message = error.message
        if isinstance(error, PolicyRefusal):
            await self._record_refusal(record, error)
        if record.operation is Operation.PROVISION:
            if self.roll_back_on_failure:
                rollback, target_record = await self.roll_back(record, target_record)
                message = f"{message} ({rollback.summary()})"
            if target_record is not None:
                await self.state.targets.save(
                    target_record.model_copy(update={"status": TargetStatus.FAILED})
                )
        return await self.state.finish(record, RequestStatus.FAILED, message=message, error=error)

    async def _record_refusal(self, record: RequestRecord, refusal: PolicyRefusal) -> None:
        """A refusal only a step can make (what the policy could not know before exomi read the target,
        e.g. a Linux VM's pwsh) goes to the refusal log like every other one."""
        telemetry.count_refusal(refusal.rule, record.channel, record.operation.value)
        requester = record.requester
        await self.state.refusals.append(
            RefusalRecord(
                channel=record.channel,
                operation=record.operation.value,
                requested_by=record.requested_by,
                principal_id=requester.principal_id if requester else None,
                azure_role=requester.azure_role if requester else None,
                target=record.target,
                request_id=record.id,
                rule=refusal.rule,
                reason=refusal.reason,
                field=refusal.field,
                external_reference=record.external_reference,
            )
        )

    async def _observe_privileges(
        self, record: RequestRecord, principal_id: str, ledgers: PassLedgers | None = None
    ) -> list[Finding] | None:
        """What the identity holds beyond what the target asked for, from Graph; None if it cannot be read.
        ``ledgers``: the pass's, which holds the ledger its grant steps have just written."""
        role = record.decision.role if record.decision else None
        try:
            return await observe_privileges(
                self.graph, self.state, principal_id, role, ledger_of=ledgers.known if ledgers else None
            )
        except ExomiError as error:
            log.warning("request %s: could not look for extra privileges: %s", record.id, error.message)
            return None

    async def _privilege_findings(
        self,
        record: RequestRecord,
        target_record: TargetRecord,
        started: asyncio.Task[list[Finding] | None] | None = None,
    ) -> tuple[TargetRecord, list[Finding]]:
        """What the identity holds beyond what the target asked for, read from Graph once the grants are
        done (``started``: the look the pass began then) or now (a provision that succeeds is not "all
        OK" while it holds Global Administrator). Returns the target's record with them, for the caller
        to write."""
        if target_record.principal_id is None:
            _discard(started)
            return target_record, []
        findings = await (started or self._observe_privileges(record, target_record.principal_id))
        if findings is None:
            return target_record, []
        telemetry.count_findings(findings, "request")
        if findings and self.remove_unmanaged_grants:
            findings = await self._remove_unmanaged(record, target_record.principal_id, findings)
        now = utcnow()
        kept = [f for f in target_record.drift if f.kind != "extra"]
        updated = target_record.model_copy(
            update={"drift": kept + [drift_of(f, now) for f in findings], "drift_checked_at": now}
        )
        return updated, findings

    async def _remove_unmanaged(
        self, record: RequestRecord, principal_id: str, findings: list[Finding]
    ) -> list[Finding]:
        """Policy remove_unmanaged_grants: remove the extra grants exomi did not make (a role exomi made for
        another target of the identity stays), each audited; returns the findings that remain."""
        owned = {grant.assignment_id for grant in (await self.state.ledger(principal_id)).grants}
        remaining = []
        for sequence, finding in enumerate(findings):
            if finding.assignment_id in owned:
                remaining.append(finding)
                continue
            try:
                if finding.what.startswith("app-role:"):
                    await self.graph.revoke_app_role(principal_id, finding.assignment_id)
                else:
                    await self.graph.remove_role(finding.assignment_id)
            except ExomiError as error:
                log.warning("request %s could not remove %s: %s", record.id, finding.what, error.message)
                remaining.append(finding)
                continue
            await self.state.audit.append(
                AuditRecord(
                    request_id=record.id,
                    step="privileges",
                    sequence=sequence,
                    action=f"remove a grant exomi did not make ({finding.what}): policy remove_unmanaged_grants",
                    target=record.target,
                    before={"assignment_id": finding.assignment_id, "severity": finding.severity.value},
                    after={"removed": True},
                    correlation_id=None,
                    requested_by=record.requested_by,
                    channel=record.channel,
                )
            )
            log.warning("request %s removed %s (policy remove_unmanaged_grants)", record.id, finding.what)
        return remaining

    async def roll_back(
        self, record: RequestRecord, target_record: TargetRecord | None
    ) -> tuple[Rollback, TargetRecord | None]:
        """Take back what the request granted that no other target needs (shared/engine/rollback.py);
        the target's record then says what exomi still holds for it."""
        target = parse_resource_id(record.target)
        principal_id = target_record.principal_id if target_record is not None else None
        rollback = await roll_back(self.state, self.graph, self.arm, record, target, principal_id)
        if target_record is None or principal_id is None:
            return rollback, target_record
        target_record = await self.state.targets.get(target.key) or target_record
        ledger = await self.state.ledger(principal_id)
        needs = {g.kind: g.assignment_id for g in ledger.needed_by(target.key)}
        runbook = target_record.granted.runbook_name
        granted = target_record.granted.model_copy(
            update={
                "app_role_assignment_id": needs.get(GrantKind.APP_ROLE),
                "role_assignment_id": needs.get(GrantKind.ENTRA_ROLE),
                "runbook_name": None if any(f"runbook {runbook}" == r for r in rollback.removed) else runbook,
            }
        )
        target_record = await self.state.targets.save(target_record.model_copy(update={"granted": granted}))
        return rollback, target_record

    async def _target_after(
        self,
        request: RequestRecord,
        target: ResourceId,
        facts: dict[str, Any],
        previous: TargetRecord | None,
        ledgers: PassLedgers,
        *,
        succeeded: bool,
    ) -> TargetRecord | None:
        """The target's record: who the identity is and exactly what exomi granted (what revoke removes),
        as the pass knows it now (``_store_target`` writes it)."""
        if request.operation is Operation.REVOKE:
            if previous is None or not succeeded:
                return previous
            return previous.model_copy(
                update={
                    "status": TargetStatus.REVOKED,
                    "granted": Grants(),
                    "last_request_id": request.id,
                    "expires_at": None,
                    # Expired access is not granted again by tags that still say the same (events.py).
                    "expired": request.channel is Channel.EXPIRY,
                }
            )
        principal_id = facts.get("principal_id")
        if principal_id is None:
            return previous
        before = previous.granted if previous is not None else Grants()
        # The identity grants this target needs, as the ownership ledger records them (shared/ownership.py):
        # only this request changes them, so the ledger as this pass last read or wrote it says.
        ledger = await ledgers.known(principal_id)
        needs = {g.kind: g.assignment_id for g in ledger.needed_by(target.key)}
        granted = Grants(
            app_role_assignment_id=needs.get(GrantKind.APP_ROLE),
            role_assignment_id=_current_role(ledger, target.key, facts.get("role_assignment_id")),
            modules=_merge_modules(
                before.modules, facts.get("modules_imported") or [], facts.get("modules_dropped") or []
            ),
            runtime_environment=facts.get("runtime_environment_created") or before.runtime_environment,
            runbook_name=facts.get("runbook_name")
            if (facts.get("runbook_by_exomi") or before.runbook_name == facts.get("runbook_name"))
            else before.runbook_name,
        )
        provision = request.request
        if not isinstance(provision, ProvisionRequest):
            return previous  # a revocation was handled above: this is unreachable
        decision = request.decision
        update: dict[str, Any] = {
            "identity": facts.get("identity") or provision.identity,
            "principal_id": principal_id,
            "client_id": facts.get("client_id"),
            "organization": provision.organization,
            "role": decision.role if decision else None,
            "runtime": decision.runtime if decision else None,
            "granted": granted,
            "status": _target_status(previous, succeeded, bool(facts.get("changed"))),
            "last_request_id": request.id,
            "managed_by_tags": _managed_by_tags(request.channel, previous),
        }
        if succeeded:  # until then an earlier request's end of access (if any) still holds
            update.update(
                expires_at=decision.expires_at if decision else None, expires=provision.expires, expired=False
            )
        if facts.get("verified_at"):
            update["last_verified_at"] = datetime.fromisoformat(facts["verified_at"])
        if previous is None:
            record = TargetRecord(target=target.canonical, target_key=target.key, kind=target.kind, **update)
        else:
            record = previous.model_copy(update=update)
            if record == previous:
                return previous  # nothing new (most steps add nothing to it)
        return record


@dataclass
class Observed:
    """One step's part of a plan or diagnosis: its observation, the error that stopped it, or the
    prerequisites that must change before it can be looked at."""

    step: Step
    observation: Observation | None
    error: ExomiError | None
    waiting_on: list[str]


def held_by_a_pass(record: RequestRecord) -> bool:
    """An engine pass holds the request (running, or holding a short wait) and has renewed its lease."""
    return (
        record.status in (RequestStatus.RUNNING, RequestStatus.WAITING)
        and record.lease_until is not None
        and record.lease_until > utcnow()
    )


def _waiting_message(stored: dict[str, StepRecord], names: set[str]) -> str:
    messages = [stored[n].message for n in sorted(names) if n in stored and stored[n].message]
    return "; ".join(m for m in messages if m) or "working"


def _with_end_of_access(record: RequestRecord) -> RequestRecord:
    """A provision request that asked for a duration: its access ends that long after it is in place."""
    request, decision = record.request, record.decision
    if not isinstance(request, ProvisionRequest) or decision is None or not request.expires:
        return record
    expires_at = decision.expires_at or expires_at_of(request.expires, utcnow())
    return record.model_copy(update={"decision": decision.model_copy(update={"expires_at": expires_at})})


def _target_status(previous: TargetRecord | None, succeeded: bool, changed: bool) -> TargetStatus:
    """Provisioned once a request succeeds; a later request that has changed nothing yet keeps it so."""
    if succeeded or (previous is not None and previous.status is TargetStatus.PROVISIONED and not changed):
        return TargetStatus.PROVISIONED
    return TargetStatus.PROVISIONING


def _managed_by_tags(channel: Channel, previous: TargetRecord | None) -> bool:
    """Tags drive a target from its first tag request on; a request through another channel (HTTP, CLI,
    ...) takes it over, and reconciliation's requests keep whatever was the case."""
    if channel is Channel.RECONCILE:
        return previous.managed_by_tags if previous is not None else False
    return channel is Channel.TAG


def _current_role(ledger: Ledger, target_key: str, found: str | None) -> str | None:
    """The Entra role assignment this target needs now: the one its entra-role step found, if exomi owns
    it (an earlier role it is changing from may still be in the ledger until that step removes it)."""
    needed = [g.assignment_id for g in ledger.needed_by(target_key, GrantKind.ENTRA_ROLE)]
    if found in needed:
        return found
    return needed[0] if needed else None


def _merge_modules(
    before: list[ModuleGrant], imported: list[dict[str, Any]], dropped: list[str]
) -> list[ModuleGrant]:
    """``dropped``: places (runtime_environment values) that are gone, e.g. scaled-in instances."""
    merged = {(m.name, m.runtime_environment): m for m in before if m.runtime_environment not in dropped}
    for item in imported:
        grant = ModuleGrant(**item)
        merged[(grant.name, grant.runtime_environment)] = grant
    return list(merged.values())
