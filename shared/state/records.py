"""The domain records the state repository reads and writes (never raw Table entities)."""

from __future__ import annotations

import secrets
import time
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.ids import TargetKind
from shared.models import (
    Channel,
    Operation,
    ProvisionRequest,
    Requester,
    RequestStatus,
    RevokeRequest,
    Role,
    Runtime,
    StepStatus,
    TargetStatus,
)
from shared.policy import Decision

T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_request_id() -> str:
    """A GUID whose first 48 bits are the creation time in ms (UUIDv7 layout): ids sort by creation."""
    millis = time.time_ns() // 1_000_000 & (2**48 - 1)
    rand_a, rand_b = secrets.randbits(12), secrets.randbits(62)
    value = millis << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return str(uuid.UUID(int=value))


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")

    etag: str | None = None  # set by the repository; pass it back to update with optimistic concurrency


class ApprovalDecision(StrEnum):
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"  # nobody decided before the deadline


class Approval(BaseModel):
    """A request that waits for an approver: why, until when, and what was decided by whom."""

    model_config = ConfigDict(extra="forbid")

    reasons: list[str]
    approvers: list[str]  # the policy's approvers when the request was made (for people reading it)
    deadline: datetime  # after this the request ends cancelled (policy approval.timeout)
    decision: ApprovalDecision | None = None
    decided_by: str | None = None
    decided_by_id: str | None = None  # the approver's object id, when it has one
    decided_at: datetime | None = None
    comment: str | None = None


class RequestRecord(_Record):
    id: str
    operation: Operation
    status: RequestStatus = RequestStatus.QUEUED
    target: str  # canonical ARM id
    target_key: str  # ResourceId.key
    channel: Channel
    requested_by: str
    requester: Requester | None = None  # who asked, as the channel identified them
    authorized_by: str | None = (
        None  # the policy rule that admitted the request ("operator": an operator channel)
    )
    approval: Approval | None = None  # set when policy made the request wait for an approver
    callback: str | None = None  # the callback URL, encrypted (shared/callbacks.py), until it is called
    external_reference: str | None = None
    request: ProvisionRequest | RevokeRequest
    decision: Decision | None = None  # the effective values policy gave the request
    message: str | None = None  # the latest human-readable progress or outcome
    error: dict[str, Any] | None = None  # ExomiError.to_dict() when the request failed
    check_again_at: datetime | None = None  # when a waiting request should be looked at again
    # A running request is held by an engine pass until then (renewed while it works); after it, the
    # pass is taken for dead and the resume pass queues the request again.
    lease_until: datetime | None = None
    # The ETag of the target's lock row as this request wrote it: the request's end deletes the row with
    # it, without reading it first (None for a request recorded by an older exomi: it is read).
    lock_etag: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    @model_validator(mode="before")
    @classmethod
    def _request_type_follows_operation(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("request"), dict):
            model = RevokeRequest if data.get("operation") == Operation.REVOKE else ProvisionRequest
            data = {**data, "request": model.model_validate(data["request"])}
        return data


class StepRecord(_Record):
    request_id: str
    name: str
    index: int = 0  # position in the plan, for ordering
    status: StepStatus = StepStatus.PENDING
    action: str | None = None  # what the step did or is about to do ("create", "none", ...)
    observed: Any = None  # JSON: what the step saw (may be a truncation note for huge values)
    check_again_at: datetime | None = None
    attempts: int = 0
    message: str | None = None
    error: dict[str, Any] | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class AuditRecord(_Record):
    """One change exomi made, or is recording, for a request. Keyed by (request, step, sequence)."""

    request_id: str
    step: str  # "request" for changes to the request itself
    sequence: int = Field(ge=0, lt=1_000_000)  # the step's action counter: the same on a replay
    action: str
    target: str
    before: Any = None
    after: Any = None
    service_request_id: str | None = None  # Microsoft Graph request-id
    correlation_id: str | None = None  # ARM x-ms-correlation-request-id
    requested_by: str
    channel: Channel
    at: datetime = Field(default_factory=utcnow)


class RefusalRecord(BaseModel):
    """One refused attempt, kept in the append-only refusal log: who asked for what, and which rule
    refused it. Nothing else is written for a refused attempt."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=lambda: new_request_id())
    at: datetime = Field(default_factory=utcnow)
    channel: Channel
    operation: str  # provision, revoke, approve, deny, cancel or "use the API"
    requested_by: str
    principal_id: str | None = None
    azure_role: str | None = None  # tag writes: the Azure role ARM allowed the write with
    target: str | None = None
    # Approvals and cancellations: the request they were about; a refused tag write: the tag request it
    # cancelled, or one that read its tags and had started (shared/tagging.py).
    request_id: str | None = None
    rule: str
    reason: str
    field: str | None = None
    event_id: str | None = None  # tag writes: the Event Grid event
    external_reference: str | None = None


class ModuleGrant(BaseModel):
    name: str
    version: str
    runtime_environment: str | None = None  # None: the PowerShell 5.1 modules API


class Grants(BaseModel):
    """What exomi itself created for a target: exactly what a revoke removes."""

    app_role_assignment_id: str | None = None
    role_assignment_id: str | None = None
    modules: list[ModuleGrant] = []
    runtime_environment: str | None = None  # created by exomi
    runbook_name: str | None = None


# missing: exomi's setup is gone; extra: a grant exomi did not make
DriftKind = Literal["missing", "extra", "error"]
SeverityLevel = Literal["high", "medium", "low"]  # the values of shared.findings.Severity


class DriftFinding(BaseModel):
    """One way a provisioned target differed from its desired state when reconciliation last looked."""

    kind: DriftKind
    what: str  # the step ("app-role", "modules", ...) or the extra grant ("entra-role:Global Reader")
    detail: str
    found_at: datetime  # when reconciliation first saw it (kept while it persists)
    request_id: str | None = None  # the request reconciliation sent to heal it, if any
    # Privilege findings (shared/findings.py): extra-privilege, look-alike or unmanaged; high, medium, low.
    category: str | None = None
    severity: SeverityLevel | None = None
    fix: str | None = None


class TargetRecord(_Record):
    target: str
    target_key: str
    kind: TargetKind
    identity: str  # "system" or the user-assigned identity's canonical id
    principal_id: str | None = None  # object id: used for every Graph assignment
    client_id: str | None = None  # app id: used only for -ManagedIdentityAccountId
    organization: str | None = None
    role: Role | None = None
    runtime: Runtime | None = None
    granted: Grants = Field(default_factory=Grants)
    status: TargetStatus = TargetStatus.PROVISIONING
    last_request_id: str | None = None
    last_verified_at: datetime | None = None
    # The opt-in tag drives this target: removing it revokes (set by tag requests, kept by reconcile ones).
    managed_by_tags: bool = False
    # Access that ends: when (None: until revoked), and what the request asked for (a duration or date),
    # which tags compare with so that re-delivered events do not extend it.
    expires_at: datetime | None = None
    expires: str | None = None
    expired: bool = False  # the last revoke was exomi taking the access away at expires_at
    drift: list[DriftFinding] = []  # what the last reconciliation found (empty: as desired)
    drift_checked_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class TagState(BaseModel):
    """What exomi knows about the tag writes of a target, for deciding who asks (shared/events.py)."""

    refused_desired: str | None = None  # fingerprint of the desired state policy last refused
    refused_by: str | None = None  # the refused writer's name (requested_by)
    newest_event_at: datetime | None = None  # event time of the newest event handled for the target
    etag: str | None = None  # of the row it was read from (None: there is none yet)


class TargetLock(_Record):
    """Which request holds a target ('one active request per target'); request_id None when free."""

    target_key: str
    target: str
    request_id: str | None = None
    acquired_at: datetime | None = None


class Page(BaseModel, Generic[T]):
    items: list[T]
    continuation_token: str | None = None  # pass back to get the next page; None on the last page


class Submission(BaseModel):
    request: RequestRecord
    created: bool  # False: an idempotent replay returned the original request
