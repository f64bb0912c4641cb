"""The JSON documents the API answers with. They are pydantic models so that the OpenAPI document is
generated from the very classes that render the answers (see openapi.py)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.errors import InputError
from shared.function_apps import FunctionAppSetup
from shared.inventory import Holder
from shared.models import Channel, Operation, RequestStatus, StepStatus
from shared.state.records import (
    AuditRecord,
    DriftFinding,
    RefusalRecord,
    RequestRecord,
    StepRecord,
    TargetRecord,
)

if TYPE_CHECKING:  # annotations only: the service imports callbacks, which import this module
    from shared.service import PlanReport, StatusReport


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    """An error: a stable code, a message for people, the offending field, and more details by code:
    PolicyRefused has rule and fix; InvalidInput has problems (every {field, message} found);
    Conflict has active_request_id and active_request_url; IdempotencyKeyReused has
    original_request_id and original_request_url; engine errors may have fix, permission, ..."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(
        description="Stable error code: InvalidInput, MalformedJson, UnsupportedMediaType, PayloadTooLarge, "
        "PolicyRefused, NotAuthenticated, NotFound, Conflict, IdempotencyKeyReused, or, for a failed "
        "request, the engine's code (PrerequisiteMissing, PermissionMissing, OperationFailed, ...)."
    )
    message: str = Field(description="What went wrong and how to fix it.")
    field: str | None = Field(
        description="The offending body field (dotted for nested ones), query parameter or header; null "
        "when no single field is at fault."
    )


class ErrorDocument(_Document):
    """Every error answer of the API."""

    error: ErrorDetail


class StepDocument(_Document):
    """One step of a request and where it stands."""

    name: str = Field(description="The step, e.g. resolve-identity, grant-app-role, verify.")
    status: StepStatus
    message: str | None = Field(description="What the step did, or what it waits for.")


class AuditDocument(_Document):
    """One change exomi made (or the acceptance of the request, step "request")."""

    step: str
    sequence: int
    action: str
    target: str
    before: Any = None
    after: Any = None
    service_request_id: str | None = Field(description="Microsoft Graph request-id of the call.")
    correlation_id: str | None = Field(description="ARM correlation id of the call.")
    requested_by: str
    channel: Channel
    at: datetime


class FindingDocument(_Document):
    """Something the identity holds beyond what its target needs, read from Microsoft Graph."""

    severity: Literal["high", "medium", "low"]
    kind: str = Field(description="extra-privilege, look-alike or unmanaged (a grant exomi did not make).")
    what: str = Field(description="e.g. entra-role:Global Administrator, app-role:Exchange.ManageAsAppV2.")
    detail: str
    fix: str = Field(description="How to remove it; exomi never removes a grant it did not make.")


class TargetFinding(FindingDocument):
    """A finding on one target, kept while it persists."""

    target: str
    found_at: datetime = Field(description="When exomi first saw it (it is kept while it persists).")


class FindingList(_Document):
    """The findings of every target exomi provisioned (GET /findings)."""

    value: list[TargetFinding] = Field(description="The latest findings of every target exomi provisioned.")


class InventoryDocument(_Document):
    """Every principal that holds Exchange Online rights, classified from live state."""

    value: list[Holder] = Field(description="Over-privileged first, then orphaned, unmanaged, managed.")


class FunctionAppDocument(_Document):
    """What a Function app needs to connect: exomi granted the identity but cannot run code there."""

    outcome: Literal["granted, not verified"] = Field(description="exomi cannot test the connection.")
    requirements_psd1: str = Field(
        description="The requirements.psd1 line (managed dependencies; host.json managedDependency.enabled)."
    )
    connect_command: str = Field(description="The connect line for profile.ps1 or the function.")
    flex_consumption: str = Field(
        description="Flex Consumption has no managed dependencies: the Modules folder."
    )
    note: str


class ResultDocument(_Document):
    """What a succeeded provision request left in place, as last verified."""

    identity: str = Field(description="'system' or the user-assigned identity's resource id.")
    principal_id: str | None = Field(description="The identity's object id (used for Graph assignments).")
    client_id: str | None = Field(
        description="The identity's client id: -ManagedIdentityAccountId of Connect-ExchangeOnline."
    )
    organization: str | None
    role: str | None = Field(description="The Entra role assigned.")
    runbook_name: str | None
    verified_at: datetime | None = Field(description="When the connection last worked.")
    expires_at: datetime | None = Field(description="When exomi takes the access away (null: until revoked).")
    findings: list[FindingDocument] = Field(
        description="What the identity holds beyond what the target asked for, as read at the end of the request."
    )
    connect_command: str | None = Field(description="The line a runbook or script uses to connect.")
    function_app: FunctionAppDocument | None = Field(
        default=None, description="Only for a Function app: the lines to use (granted, not verified)."
    )


class ApprovalDocument(_Document):
    """Why a request waits (or waited) for an approver, and what was decided."""

    reasons: list[str] = Field(description="Why policy requires an approval.")
    approvers: list[str] = Field(description="Who may approve (object ids and name patterns).")
    deadline: datetime = Field(description="After this the request ends cancelled (ApprovalExpired).")
    decision: Literal["approved", "denied", "expired"] | None = Field(description="null while it waits.")
    decided_by: str | None
    decided_at: datetime | None
    comment: str | None


class RequestSummary(_Document):
    """A request as lists and callbacks show it (the callback body is exactly this)."""

    id: str
    operation: Operation
    status: RequestStatus = Field(
        description="awaiting_approval, queued, running, waiting (active: poll again) or succeeded, revoked, "
        "failed, cancelled, denied."
    )
    target: str = Field(description="The target's ARM resource id.")
    external_reference: str | None = Field(
        description="The caller's reference (e.g. a ticket id), echoed back."
    )
    requested_by: str = Field(description="Who asked, as exomi identified them.")
    channel: Channel
    authorized_by: str | None = Field(
        description="The policy rule that admitted the request ('operator' for the exomi command and exomi itself)."
    )
    approval: ApprovalDocument | None = Field(description="Set when policy required an approver.")
    expires_at: datetime | None = Field(
        description="When exomi takes the access away again (null: until revoked)."
    )
    message: str | None = Field(description="The latest progress or the outcome, for people.")
    error: ErrorDetail | None = Field(description="Why the request failed (same shape as API errors).")
    created_at: datetime
    updated_at: datetime


class RequestDocument(RequestSummary):
    """One request with its steps (GET /requests/{id}, and the 202 answers that accept a request)."""

    check_again_at: datetime | None = Field(description="When a waiting request is looked at again.")
    steps: list[StepDocument]
    result: ResultDocument | None = Field(description="For a succeeded provision request: what is in place.")
    audit: list[AuditDocument] | None = Field(None, description="Only with ?include=audit.")


class CancelDocument(RequestDocument):
    """A cancelled request, and what it had already changed (which stays until the target is revoked)."""

    kept: list[str] = Field(
        description="What the request had changed and left in place: still needed by another target, or all "
        "of it when the policy's on_failure is keep."
    )
    rolled_back: list[str] = Field(description="What the request had granted and exomi took back.")


class RequestList(_Document):
    """A page of requests (GET /requests)."""

    value: list[RequestSummary] = Field(description="Requests, oldest first.")
    nextLink: str | None = Field(description="The URL of the next page; null on the last page.")  # noqa: N815


class RefusalDocument(_Document):
    """One refused attempt: nothing was changed, nothing else was recorded."""

    id: str
    at: datetime
    channel: Channel
    operation: str = Field(description="provision, revoke, approve, deny, cancel, or 'use the API'.")
    requested_by: str
    principal_id: str | None = Field(description="The requester's object id, when known.")
    azure_role: str | None = Field(description="Tag writes: the Azure role ARM allowed the write with.")
    target: str | None
    request_id: str | None = Field(description="Approvals and cancellations: the request concerned.")
    rule: str = Field(description="The policy field that refused it (rules, approval.approvers, ...).")
    reason: str
    field: str | None
    event_id: str | None = Field(description="Tag writes: the Event Grid event.")
    external_reference: str | None


class RefusalList(_Document):
    """A page of refused attempts (GET /refusals)."""

    value: list[RefusalDocument] = Field(description="Refusals, oldest first.")
    nextLink: str | None = Field(description="The URL of the next page; null on the last page.")  # noqa: N815


class ApprovalBody(_Document):
    """An approver's decision on a request that awaits approval."""

    decision: Literal["approve", "deny"] = Field(
        description="approve (the request runs) or deny (it ends denied); 'reject', as a Logic Apps approval "
        "action answers, means deny."
    )
    comment: str | None = Field(None, max_length=500, description="Kept with the decision.")

    @field_validator("decision", mode="before")
    @classmethod
    def _spelling(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            return {"approved": "approve", "reject": "deny", "rejected": "deny", "denied": "deny"}.get(
                value, value
            )
        return value

    @field_validator("comment")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and not value.replace("\n", " ").isprintable():
            raise ValueError("must contain printable characters only")
        return value

    @classmethod
    def parse(cls, data: Any) -> ApprovalBody:
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            item = error.errors(include_url=False)[0]
            field = ".".join(str(part) for part in item["loc"]) or "body"
            message = str(item["ctx"]["error"]) if item["type"] == "value_error" else item["msg"]
            raise InputError(field, message) from None

    @property
    def approve(self) -> bool:
        return self.decision == "approve"


class PlanStepDocument(_Document):
    """One prerequisite of the target: what exomi saw, and what provisioning would do."""

    name: str
    title: str
    verdict: Literal["ok", "missing", "wrong", "pending", "n/a", "unknown", "error"] = Field(
        description="ok: as desired; missing/wrong: provisioning would change it; pending: Azure is "
        "working on it; unknown: depends on a step that must change first; error: could not look."
    )
    detail: str = Field(description="What exomi saw.")
    action: str | None = Field(description="What provisioning would do.")
    fix: str | None = Field(description="How to fix it by hand.")


class DecisionDocument(_Document):
    """The effective values policy gives the request."""

    role: str | None
    runtime: str | None
    runtime_environment: str | None
    module_versions: dict[str, str]
    runbook_name: str | None
    expires_at: datetime | None = Field(description="When the access would end (null: until revoked).")


class PlanDocument(_Document):
    """A plan (what provisioning would change) or a diagnosis (each prerequisite against the desired state)."""

    target: str
    allowed: bool = Field(description="false: policy refuses the request (see refused).")
    refused: ErrorDetail | None = Field(description="The policy refusal, if any (a finding, not an error).")
    approval_required: list[str] = Field(
        description="Why an approver would have to approve the request first (empty: no approval)."
    )
    findings: list[FindingDocument] = Field(
        description="Diagnose: what the identity holds beyond what the target needs, read live from Graph."
    )
    decision: DecisionDocument | None
    changes: list[str] = Field(description="The steps whose verdict is missing or wrong.")
    steps: list[PlanStepDocument]


class HealthCheck(_Document):
    """One check of the health answer."""

    name: Literal["settings", "storage", "graph_permissions"]
    ok: bool
    detail: str | None = Field(description="Why it failed (never a secret).")


class HealthDocument(_Document):
    """Whether the app can work: its settings load, its storage answers, its identity holds the Graph
    permissions it needs."""

    # healthy: everything answers; degraded (HTTP 200): exomi runs but its identity lacks a required Graph
    # permission (provisions fail until it is granted); unhealthy (HTTP 503): settings or storage fail.
    status: Literal["healthy", "degraded", "unhealthy"]
    checks: list[HealthCheck]


# ---------------------------------------------------------------------------------------------- rendering


def summary(record: RequestRecord) -> RequestSummary:
    """The request as lists and callbacks show it; its error in the API's error shape."""
    error = {**record.error, "field": record.error.get("field")} if record.error else None
    return RequestSummary(
        id=record.id,
        operation=record.operation,
        status=record.status,
        target=record.target,
        external_reference=record.external_reference,
        requested_by=record.requested_by,
        channel=record.channel,
        authorized_by=record.authorized_by,
        approval=ApprovalDocument.model_validate(record.approval.model_dump(exclude={"decided_by_id"}))
        if record.approval
        else None,
        expires_at=record.decision.expires_at if record.decision else None,
        message=record.message,
        error=ErrorDetail.model_validate(error) if error else None,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


def refusal_document(record: RefusalRecord) -> RefusalDocument:
    return RefusalDocument.model_validate(record.model_dump())


def request_document(report: StatusReport, *, include_audit: bool) -> dict[str, Any]:
    record = report.request
    document = RequestDocument(
        **summary(record).model_dump(),
        check_again_at=record.check_again_at,
        steps=[_step(step) for step in report.steps],
        result=_result(record, report.target, report.connect_command, report.function_app),
        audit=[_audit(entry) for entry in report.audit] if include_audit else None,
    )
    return document.model_dump(mode="json", exclude=None if include_audit else {"audit"})


def _step(step: StepRecord) -> StepDocument:
    return StepDocument(name=step.name, status=step.status, message=step.message)


def _audit(entry: AuditRecord) -> AuditDocument:
    return AuditDocument.model_validate(entry.model_dump(exclude={"etag", "request_id"}))


def _result(
    record: RequestRecord,
    target: TargetRecord | None,
    connect: str | None,
    function_app: FunctionAppSetup | None = None,
) -> ResultDocument | None:
    if record.status is not RequestStatus.SUCCEEDED or target is None or target.last_request_id != record.id:
        return None
    return ResultDocument(
        identity=target.identity,
        principal_id=target.principal_id,
        client_id=target.client_id,
        organization=target.organization,
        role=target.role.value if target.role else None,
        runbook_name=target.granted.runbook_name,
        verified_at=target.last_verified_at,
        expires_at=target.expires_at,
        findings=[_finding(f) for f in target.drift if f.kind == "extra" and f.severity],
        connect_command=connect,
        function_app=FunctionAppDocument.model_validate(function_app.to_dict()) if function_app else None,
    )


def _finding(finding: DriftFinding) -> FindingDocument:
    return FindingDocument(
        severity=finding.severity or "low",
        kind=finding.category or "unmanaged",
        what=finding.what,
        detail=finding.detail,
        fix=finding.fix or "",
    )


def finding_list(targets: list[TargetRecord]) -> FindingList:
    """Every target's latest findings: extra privilege and drift (missing setup, errors)."""
    rows = []
    for target in targets:
        for finding in target.drift:
            severity = finding.severity or ("medium" if finding.kind != "extra" else "low")
            rows.append(
                TargetFinding(
                    target=target.target,
                    severity=severity,
                    kind=finding.category or (finding.kind if finding.kind != "extra" else "unmanaged"),
                    what=finding.what,
                    detail=finding.detail,
                    fix=finding.fix or "",
                    found_at=finding.found_at,
                )
            )
    return FindingList(value=rows)


def plan_document(report: PlanReport) -> dict[str, Any]:
    refused = report.refused
    decision = report.decision if refused is None else None
    document = PlanDocument(
        target=report.target,
        allowed=refused is None,
        refused=ErrorDetail.model_validate({**refused, "field": refused.get("field")}) if refused else None,
        decision=DecisionDocument(
            role=decision.role.value if decision.role else None,
            runtime=decision.runtime.value if decision.runtime else None,
            runtime_environment=decision.runtime_environment,
            module_versions={name.value: version for name, version in decision.module_versions.items()},
            runbook_name=decision.runbook_name,
            expires_at=decision.expires_at,
        )
        if decision is not None
        else None,
        approval_required=report.approval,
        findings=[
            FindingDocument.model_validate(f.model_dump(exclude={"assignment_id"})) for f in report.findings
        ],
        changes=[step.name for step in report.changes],
        steps=[PlanStepDocument.model_validate(step.__dict__) for step in report.steps],
    )
    return document.model_dump(mode="json")
