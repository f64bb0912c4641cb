"""The API's handlers: each turns an ``ApiRequest`` into an ``ApiResponse`` over ``ExomiService``.

They identify the caller, validate and record; none waits on Azure: an accepted request goes to the
queue worker and the caller follows it at its status URL (202 while it runs, then a terminal answer).
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import UTC, datetime
from typing import Any

from shared.api.caller import identify
from shared.api.documents import (
    ApprovalBody,
    HealthCheck,
    HealthDocument,
    InventoryDocument,
    RefusalList,
    RequestList,
    finding_list,
    plan_document,
    refusal_document,
    request_document,
    summary,
)
from shared.api.http import ApiRequest, ApiResponse, error_response
from shared.authorization import API_CHANNELS, check_api_access
from shared.errors import (
    ConfigurationError,
    Conflict,
    IdempotencyConflict,
    InputError,
    NotFound,
)
from shared.ids import validate_guid
from shared.models import Channel, Requester, RequestStatus
from shared.runtime import exomi_service
from shared.service import Attempt, ExomiService, StatusReport
from shared.state.idempotency import MAX_KEY_LENGTH
from shared.state.query import MAX_PAGE_SIZE
from shared.state.records import RequestRecord, utcnow

log = logging.getLogger("exomi.api")

IDEMPOTENCY_KEY = "Idempotency-Key"
LIST_FILTERS = ("status", "operation", "channel", "target", "external_reference")
LIST_PARAMETERS = (*LIST_FILTERS, "page_size", "continuation_token")
REFUSAL_PARAMETERS = ("since", "channel", "target", "page_size", "continuation_token")
SEVERITIES = ("high", "medium", "low")
DEFAULT_PAGE_SIZE = 50
HEALTH_TIMEOUT_SECONDS = 10.0
# Terminal statuses that answer 200; failed and cancelled answer 422 (see docs/API.md).
SUCCESSFUL = (RequestStatus.SUCCEEDED, RequestStatus.REVOKED)


async def _open(request: ApiRequest, *, records: bool = True) -> tuple[ExomiService, Requester]:
    """The service and the caller, once the policy admits the caller to the API at all (403, recorded
    as a refusal, when no rule names it); ``records`` False for reads, which ignore X-Exomi-On-Behalf-Of."""
    service = await exomi_service()
    caller = identify(request, service.settings, asserted=records)
    refusal = check_api_access(service.policy, caller)
    if refusal is not None:
        attempt = Attempt(caller, Channel.HTTP, "use the API", None)
        raise await service.refused(refusal, attempt)
    return service, caller


def _status_path(request_id: str) -> str:
    return f"requests/{request_id}"


# ------------------------------------------------------------------------------ create and revoke


async def create_request(request: ApiRequest) -> ApiResponse:
    """POST /requests: validate, check policy, record, hand to the worker; 202 + Location."""
    return await _submit(request, revoke=False)


async def create_revocation(request: ApiRequest) -> ApiResponse:
    """POST /revocations: like create, for taking a target's access away."""
    return await _submit(request, revoke=True)


async def _submit(request: ApiRequest, *, revoke: bool) -> ApiResponse:
    service, caller = await _open(request)
    body, channel = _request_body(request)
    key = _idempotency_key(request)
    submit = service.submit_revoke if revoke else service.submit_provision
    try:
        submission = await submit(body, requester=caller, channel=channel, idempotency_key=key)
    except IdempotencyConflict as error:
        return error_response(
            error,
            field=IDEMPOTENCY_KEY,
            original_request_url=request.url_for(_status_path(error.original_request_id)),
        )
    except Conflict as error:
        url = request.url_for(_status_path(error.active_request_id)) if error.active_request_id else None
        return error_response(error, field="target", active_request_url=url)
    if submission.created or submission.request.status is RequestStatus.QUEUED:
        # A replay of a request that may never have reached the queue queues it again (a duplicate work
        # item is harmless: a pass that finds another one holding the request does nothing). A queue
        # that does not answer fails nothing: the request is recorded and the resume pass queues it.
        await service.try_enqueue(submission.request)
    # A replay answers like the original: 202 and the status URL, whatever the request's state now.
    report = await service.status(submission.request.id)
    response = await _request_answer(request, service, report, accepted=True)
    if not submission.created:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _request_body(request: ApiRequest) -> tuple[dict[str, Any], Channel]:
    """The body without its channel, and the channel (http unless the caller says logicapps or ticket)."""
    body = request.json_body()
    if "requested_by" in body:
        raise InputError(
            "requested_by",
            "is set from the caller's authentication; leave it out (send the X-Exomi-On-Behalf-Of header "
            "to record whom you act for)",
        )
    channel = body.pop("channel", Channel.HTTP.value)
    if channel not in [c.value for c in API_CHANNELS]:
        raise InputError("channel", f"must be one of {', '.join(c.value for c in API_CHANNELS)}")
    return body, Channel(channel)


def _idempotency_key(request: ApiRequest) -> str | None:
    key = request.header(IDEMPOTENCY_KEY)
    if key is not None and (len(key) > MAX_KEY_LENGTH or not key.isprintable()):
        raise InputError(IDEMPOTENCY_KEY, f"must be 1-{MAX_KEY_LENGTH} printable characters")
    return key


# ------------------------------------------------------------------------------ read and list


async def get_request(request: ApiRequest) -> ApiResponse:
    """GET /requests/{id}: 202 while active, 200 succeeded/revoked, 422 failed/cancelled."""
    service, _ = await _open(request, records=False)
    report = await service.status(_request_id(request))
    return await _request_answer(
        request, service, report, accepted=False, include_audit=_include_audit(request)
    )


def _include_audit(request: ApiRequest) -> bool:
    # Unknown values are ignored: on this route a 422 always means "the request failed".
    return "audit" in [part.strip().lower() for part in (request.query.get("include") or "").split(",")]


async def _request_answer(
    request: ApiRequest,
    service: ExomiService,
    report: StatusReport,
    *,
    accepted: bool,
    include_audit: bool = False,
    always_ok: bool = False,
) -> ApiResponse:
    """The request document: 202 + Location + Retry-After while active (or just accepted), else 200
    or 422; ``always_ok`` answers 200 + Location whatever the state (approval and cancel answers)."""
    record = report.request
    document = request_document(report, include_audit=include_audit)
    if not always_ok and (accepted or record.status.active):
        # The asynchronous request-reply pattern: 202 + Location (+ Retry-After) until it ends.
        headers = {"Location": request.url_for(_status_path(record.id))}
        if record.status.active:
            headers["Retry-After"] = str(_retry_after(service, record))
        return ApiResponse(202, document, headers)
    if always_ok:
        return ApiResponse(200, document, {"Location": request.url_for(_status_path(record.id))})
    return ApiResponse(200 if record.status in SUCCESSFUL else 422, document)


def _retry_after(service: ExomiService, record: RequestRecord) -> int:
    """Seconds until it is worth asking again: when a waiting request is due, else one poll interval."""
    timings = service.settings.engine
    seconds = (record.check_again_at - utcnow()).total_seconds() if record.check_again_at else timings.poll
    return max(1, min(math.ceil(seconds), math.ceil(timings.max_poll)))


async def list_requests(request: ApiRequest) -> ApiResponse:
    """GET /requests: filtered, oldest first, paged with a continuation token behind nextLink."""
    service, _ = await _open(request, records=False)
    unknown = sorted(set(request.query) - {*LIST_PARAMETERS, "code"})
    if unknown:
        raise InputError(unknown[0], f"is not a filter; filters are: {', '.join(LIST_PARAMETERS)}")
    filters: dict[str, Any] = {name: request.query[name] for name in LIST_FILTERS if request.query.get(name)}
    if "status" in filters:
        filters["status"] = [part.strip() for part in filters["status"].split(",")]
    page_size = _page_size(request.query.get("page_size"))
    page = await service.list_requests(
        **filters, page_size=page_size, continuation_token=request.query.get("continuation_token")
    )
    next_link = None
    if page.continuation_token:
        query = {name: request.query.get(name) for name in LIST_FILTERS}
        next_link = request.url_for(
            "requests",
            {**query, "page_size": str(page_size), "continuation_token": page.continuation_token},
        )
    document = RequestList(value=[summary(record) for record in page.items], nextLink=next_link)
    return ApiResponse(200, document.model_dump(mode="json"))


def _page_size(text: str | None) -> int:
    if text is None:
        return DEFAULT_PAGE_SIZE
    if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE_SIZE:
        raise InputError("page_size", f"must be a whole number from 1 to {MAX_PAGE_SIZE}")
    return int(text)


# ------------------------------------------------------------------------------ approval and cancel


async def decide_approval(request: ApiRequest) -> ApiResponse:
    """POST /requests/{id}/approval {"decision": "approve"|"deny", "comment"}: an approver's decision.
    200 with the request (queued to run, or denied); 403 (recorded) for anyone who may not approve it;
    409 when the request does not await approval."""
    service, caller = await _open(request, records=False)
    body = ApprovalBody.parse(request.json_body())
    record = await service.decide(_request_id(request), caller, approve=body.approve, comment=body.comment)
    report = await service.status(record.id)
    return await _request_answer(request, service, report, accepted=False, always_ok=True)


async def cancel_request(request: ApiRequest) -> ApiResponse:
    """POST /requests/{id}/cancel: end a queued, waiting or awaiting-approval request. 200 with the
    request and what it had already changed (kept); 403 (recorded) for a caller who may not; 409 when
    it has ended or is in the middle of a step."""
    service, caller = await _open(request, records=False)
    cancellation = await service.cancel(_request_id(request), caller, Channel.HTTP)
    report = await service.status(cancellation.request.id)
    response = await _request_answer(request, service, report, accepted=False, always_ok=True)
    response.body["kept"] = cancellation.kept
    response.body["rolled_back"] = cancellation.rolled_back
    return response


def _request_id(request: ApiRequest) -> str:
    request_id = request.route_params.get("id", "")
    try:
        return validate_guid(request_id, "id")
    except InputError:  # not even a request id
        raise NotFound("request", request_id[:80]) from None


# ------------------------------------------------------------------------------ findings


async def list_findings(request: ApiRequest) -> ApiResponse:
    """GET /findings: every target's latest findings (extra privilege, missing setup), highest first."""
    service, _ = await _open(request, records=False)
    severity = request.query.get("severity")
    if severity is not None and severity not in SEVERITIES:
        raise InputError("severity", f"must be one of {', '.join(SEVERITIES)}")
    unknown = sorted(set(request.query) - {"severity", "code"})
    if unknown:
        raise InputError(unknown[0], "is not a filter; the filter is: severity")
    document = finding_list(await service.findings())
    if severity is not None:
        at_least = SEVERITIES.index(severity)
        document.value = [f for f in document.value if SEVERITIES.index(f.severity) <= at_least]
    document.value.sort(key=lambda f: (SEVERITIES.index(f.severity), f.target.lower()))
    return ApiResponse(200, document.model_dump(mode="json"))


# ------------------------------------------------------------------------------ inventory


async def inventory(request: ApiRequest) -> ApiResponse:
    """GET /inventory: every principal holding Exchange Online rights, managed, unmanaged or orphaned."""
    service, _ = await _open(request, records=False)
    unknown = sorted(set(request.query) - {"code"})
    if unknown:
        raise InputError(unknown[0], "is not a parameter of this route")
    document = InventoryDocument(value=await service.inventory())
    return ApiResponse(200, document.model_dump(mode="json"))


# ------------------------------------------------------------------------------ refusals


async def list_refusals(request: ApiRequest) -> ApiResponse:
    """GET /refusals: refused attempts (who, channel, target, rule, when), oldest first, paged."""
    service, _ = await _open(request, records=False)
    unknown = sorted(set(request.query) - {*REFUSAL_PARAMETERS, "code"})
    if unknown:
        raise InputError(unknown[0], f"is not a filter; filters are: {', '.join(REFUSAL_PARAMETERS)}")
    filters: dict[str, Any] = {
        name: request.query[name] for name in ("channel", "target") if request.query.get(name)
    }
    if request.query.get("since"):
        filters["since"] = _since(request.query["since"])
    page_size = _page_size(request.query.get("page_size"))
    page = await service.list_refusals(
        **filters, page_size=page_size, continuation_token=request.query.get("continuation_token")
    )
    next_link = None
    if page.continuation_token:
        query = {name: request.query.get(name) for name in ("since", "channel", "target")}
        next_link = request.url_for(
            "refusals", {**query, "page_size": str(page_size), "continuation_token": page.continuation_token}
        )
    document = RefusalList(value=[refusal_document(r) for r in page.items], nextLink=next_link)
    return ApiResponse(200, document.model_dump(mode="json"))


def _since(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError("since", "must be an ISO 8601 date or time such as 2026-12-01T00:00:00Z") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


# ------------------------------------------------------------------------------ plan and diagnose


async def plan(request: ApiRequest) -> ApiResponse:
    """POST /plan: what provisioning would change; writes nothing. A policy refusal is a finding."""
    service, caller = await _open(request)
    body, channel = _request_body(request)
    report = await service.plan(body, requester=caller, channel=channel)
    return ApiResponse(200, plan_document(report))


async def diagnose(request: ApiRequest) -> ApiResponse:
    """POST /diagnose: every prerequisite of a target against its desired state, with fixes."""
    service, caller = await _open(request)
    body, channel = _request_body(request)
    report = await service.diagnose(body, requester=caller, channel=channel)
    return ApiResponse(200, plan_document(report))


# ------------------------------------------------------------------------------ health


async def health(request: ApiRequest) -> ApiResponse:
    """GET /health (anonymous): 200 when the settings load and storage answers, else 503; "degraded"
    (still 200) when exomi's identity lacks a Graph permission every provision needs. Details go to the
    log; the answer names what failed, never a value."""
    settings_ok, storage_ok = True, True
    settings_detail = storage_detail = None
    try:
        service = await asyncio.wait_for(exomi_service(), HEALTH_TIMEOUT_SECONDS)
    except ConfigurationError as error:
        log.error("health: %s", error.message)
        settings_ok, storage_ok = False, False
        settings_detail = f"app setting {error.setting} is not usable (the app's log says why)"
        storage_detail = "not checked"
    except Exception as error:  # noqa: BLE001 - whatever it is, the app cannot serve
        log.error("health: opening storage failed: %s: %s", type(error).__name__, error)
        storage_ok, storage_detail = False, "storage cannot be opened (the app's log says why)"
    else:
        try:
            await asyncio.wait_for(service.check_storage(), HEALTH_TIMEOUT_SECONDS)
        except Exception as error:  # noqa: BLE001
            log.error("health: storage probe failed: %s: %s", type(error).__name__, error)
            storage_ok, storage_detail = False, "storage does not answer (the app's log says why)"
    healthy = settings_ok and storage_ok
    checks = [
        HealthCheck(name="settings", ok=settings_ok, detail=settings_detail),
        HealthCheck(name="storage", ok=storage_ok, detail=storage_detail),
    ]
    degraded = False
    if healthy:
        from shared import self_check  # only the health probe needs it

        try:
            permissions = await asyncio.wait_for(
                self_check.graph_permissions(service), HEALTH_TIMEOUT_SECONDS
            )
        except Exception as error:  # noqa: BLE001 - Graph not answering: the permissions are unknown
            log.error("health: reading exomi's Graph permissions failed: %s: %s", type(error).__name__, error)
            checks.append(HealthCheck(name="graph_permissions", ok=False, detail="Graph did not answer"))
            degraded = True
        else:
            degraded = not permissions.ok
            checks.append(HealthCheck(name="graph_permissions", ok=permissions.ok, detail=permissions.detail))
    # Degraded answers 200: the app itself runs (a 503 would make a load balancer take it out, which
    # cannot help); provisioning fails until an admin grants what is missing.
    document = HealthDocument(
        status="unhealthy" if not healthy else "degraded" if degraded else "healthy", checks=checks
    )
    return ApiResponse(200 if healthy else 503, document.model_dump(mode="json"))
