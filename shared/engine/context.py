"""What a step works with: the request, what earlier steps found (facts), the Azure gateways, the
target's record, and an audit trail whose records survive a crash at any point."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.azure.arm import ArmGateway, ResourceRef
from shared.azure.clients import ARM_CORRELATION
from shared.azure.graph import GraphGateway
from shared.engine.journal import Journal
from shared.ids import ResourceId, TargetKind
from shared.models import ProvisionRequest, Role, Runtime
from shared.ownership import Ledger
from shared.policy import Decision
from shared.settings import EngineTimings, ExchangeEnvironment
from shared.state.ledger import update_ledger
from shared.state.records import AuditRecord, RequestRecord, TargetRecord, utcnow
from shared.state.store import StateStore


class Verdict(enum.StrEnum):
    """How an observed piece of the tenant compares with the desired state."""

    OK = "ok"  # as desired: nothing to do
    MISSING = "missing"  # absent: the step would create it
    WRONG = "wrong"  # present but different: the step would change it
    PENDING = "pending"  # Azure is still working on it (import, replication, a job)
    NOT_APPLICABLE = "n/a"


@dataclass
class Observation:
    verdict: Verdict
    detail: str  # what was seen, for people
    fix: str | None = None  # what would make it right (diagnose shows it)
    action: str | None = None  # what the step would do (plan shows it)
    facts: dict[str, Any] = field(default_factory=dict)  # values later steps need


@dataclass
class StepResult:
    done: bool
    message: str
    changed: bool = False
    facts: dict[str, Any] = field(default_factory=dict)
    check_again_in: float | None = None  # seconds, when not done
    memo: dict[str, Any] = field(default_factory=dict)  # the step's own progress (job name, tokens...)
    # Waits of Azure's this step saw end, by the engine timing they inform (``expected_import``: the
    # seconds it took); the engine learns them (shared/state/durations.py).
    took: dict[str, float] = field(default_factory=dict)


def resource_ref(resource_id: ResourceId) -> ResourceRef:
    return ResourceRef(resource_id.subscription_id, resource_id.resource_group, resource_id.name)


class AuditTrail:
    """Audit records for one step of one request. A change is recorded twice: an intent before the
    call (written at once) and the result after it (written at the pass's next checkpoint,
    shared/engine/journal.py), under sequence numbers that are the same on a replay. A crash between
    the call and the result record is mended when the step runs again and finds the change made
    (``settle``), so a change is never lost and never recorded twice."""

    def __init__(self, journal: Journal | None, request: RequestRecord, step: str, attempt: int) -> None:
        self.journal = journal  # None: plan and diagnose, which write nothing
        self.request = request
        self.step = step
        self.base = attempt * 100
        self.existing = {(r.step, r.sequence): r for r in journal.of_step(step)} if journal else {}
        # This request set out to make a change that settle found in place: a change of this request's,
        # though the run that made it did not get to record the step's outcome.
        self.found_own_change = False

    def _record(
        self,
        sequence: int,
        action: str,
        before: Any,
        after: Any,
        service_request_id: str | None = None,
        correlation_id: str | None = None,
    ) -> AuditRecord:
        return AuditRecord(
            request_id=self.request.id,
            step=self.step,
            sequence=sequence,
            action=action,
            target=self.request.target,
            before=before,
            after=after,
            service_request_id=service_request_id,
            correlation_id=correlation_id,
            requested_by=self.request.requested_by,
            channel=self.request.channel,
        )

    def _journal(self) -> Journal:
        if self.journal is None:
            raise RuntimeError(f"step {self.step} records a change while only observing")
        return self.journal

    async def intend(self, index: int, action: str, before: Any) -> None:
        record = self._record(self.base + 2 * index, f"{action} (started)", before, None)
        await self._journal().intend(record)
        self.existing[(self.step, record.sequence)] = record

    async def done(
        self, index: int, action: str, before: Any, after: Any, service_request_id: str | None = None
    ) -> None:
        # An ARM change names its call by the correlation id of the step's latest ARM answer (a Graph
        # change by its request-id).
        correlation_id = None if service_request_id else ARM_CORRELATION.get()
        record = self._record(
            self.base + 2 * index + 1, action, before, after, service_request_id, correlation_id
        )
        self._journal().result(record)
        self.existing[(self.step, record.sequence)] = record

    async def settle(self, index: int, action: str, after: Any) -> bool:
        """The desired state is already there: if an earlier run recorded the intent of ``action``
        but crashed before recording its result, record the result now (under the intent's key).
        True when this request (in any attempt) set out to make the change: it is exomi's doing."""
        started = f"{action} (started)"
        made = False
        for (step, sequence), intent in list(self.existing.items()):
            if step != self.step or intent.action != started:
                continue
            made = True
            if (step, sequence + 1) not in self.existing:
                record = self._record(
                    sequence + 1, action, intent.before, {"found_after_resume": True, **(after or {})}
                )
                self._journal().result(record)
                self.existing[(step, sequence + 1)] = record
        self.found_own_change = self.found_own_change or made
        return made


class PassLedgers:
    """The ownership ledgers as this pass last read or wrote them, by identity (one read per identity
    and pass where a fresh one is not needed).

    ``known`` is for what only this request changes, the grants its own target needs (one active
    request per target). A write starts from the known ledger and is conditioned on its ETag, so a ledger
    another request changed meanwhile is read again and the change applied to that; the steps of one
    pass write one identity's ledger one after the other, each from the last one's result. What decides
    a removal (who else needs a grant) reads ``fresh``."""

    def __init__(self, state: StateStore) -> None:
        self.state = state
        self._known: dict[str, Ledger] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, principal_id: str) -> asyncio.Lock:
        return self._locks.setdefault(principal_id.lower(), asyncio.Lock())

    async def fresh(self, principal_id: str) -> Ledger:
        ledger = await self.state.ledger(principal_id)
        self._known[ledger.principal_id] = ledger
        return ledger

    async def known(self, principal_id: str) -> Ledger:
        async with self._lock(principal_id):
            ledger = self._known.get(principal_id.lower())
            return ledger if ledger is not None else await self.fresh(principal_id)

    async def update(self, principal_id: str, change: Callable[[Ledger], Ledger]) -> Ledger:
        first = True

        async def read() -> Ledger:
            nonlocal first
            known = self._known.get(principal_id.lower()) if first else None
            first = False
            return known if known is not None else await self.fresh(principal_id)

        async with self._lock(principal_id):
            ledger = await update_ledger(read, self.state.ledgers, change)
            self._known[ledger.principal_id] = ledger
            return ledger


@dataclass(frozen=True)
class Desired:
    """The effective values of an allowed provision request: what the steps make true. A decision
    without them (refused, or a revocation's) never reaches a provisioning step."""

    role: Role
    role_template_id: str
    runtime: Runtime
    runtime_environment: str | None  # None for PowerShell 5.1 and for targets that are not Automation
    module_versions: dict[str, str]
    runbook_name: str

    @classmethod
    def of(cls, decision: Decision | None, request_id: str) -> Desired:
        if (
            decision is None
            or decision.role is None
            or decision.role_template_id is None
            or decision.runtime is None
            or decision.runbook_name is None
        ):
            raise RuntimeError(f"step order error: request {request_id} has no complete policy decision")
        return cls(
            role=decision.role,
            role_template_id=decision.role_template_id,
            runtime=decision.runtime,
            runtime_environment=decision.runtime_environment,
            module_versions={str(name): version for name, version in decision.module_versions.items()},
            runbook_name=decision.runbook_name,
        )


@dataclass
class StepContext:
    request: RequestRecord
    decision: Decision | None
    target: ResourceId
    arm: ArmGateway
    graph: GraphGateway
    state: StateStore
    timings: EngineTimings
    exchange_environment: ExchangeEnvironment  # for the connect line of every generated script
    facts: dict[str, Any]
    target_record: TargetRecord | None
    audit: AuditTrail
    ledgers: PassLedgers  # the identity's ownership ledger, read once per pass where that is enough
    memo: dict[str, Any] = field(default_factory=dict)
    now: datetime = field(default_factory=utcnow)

    @property
    def kind(self) -> TargetKind:
        return self.target.kind

    @property
    def desired(self) -> Desired:
        """What the policy decided for this provision request, complete (revocations have none)."""
        return Desired.of(self.decision, self.request.id)

    @property
    def provision(self) -> ProvisionRequest:
        request = self.request.request
        if not isinstance(request, ProvisionRequest):
            raise RuntimeError(f"step order error: request {self.request.id} is not a provision request")
        return request

    @property
    def ref(self) -> ResourceRef:
        return resource_ref(self.target)

    def fact(self, name: str) -> Any:
        try:
            return self.facts[name]
        except KeyError:
            raise RuntimeError(f"step order error: fact {name!r} is not known yet") from None
