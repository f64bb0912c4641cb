"""What a step works with: the request, what earlier steps found (facts), the Azure gateways, the
target's record, and an audit trail whose records survive a crash at any point."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.azure.arm import ArmGateway, ResourceRef
from shared.azure.clients import ARM_CORRELATION
from shared.azure.graph import GraphGateway
from shared.ids import ResourceId, TargetKind
from shared.models import ProvisionRequest, Role, Runtime
from shared.policy import Decision
from shared.settings import EngineTimings, ExchangeEnvironment
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
    call and the result after it, under sequence numbers that are the same on a replay. A crash
    between the call and the result record is mended when the step runs again and finds the change
    made (``settle``), so a change is never lost and never recorded twice."""

    def __init__(
        self, state: StateStore, request: RequestRecord, step: str, attempt: int, existing: list[AuditRecord]
    ) -> None:
        self.state = state
        self.request = request
        self.step = step
        self.base = attempt * 100
        self.existing = {(r.step, r.sequence): r for r in existing}

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

    async def intend(self, index: int, action: str, before: Any) -> None:
        record = self._record(self.base + 2 * index, f"{action} (started)", before, None)
        await self.state.audit.append(record)
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
        await self.state.audit.append(record)
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
                await self.state.audit.append(record)
                self.existing[(step, sequence + 1)] = record
        return made


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
