"""The API's handlers: each turns an ``ApiRequest`` into an ``ApiResponse`` over ``ExomiService``.

They identify the caller, validate and record; none waits on Azure: an accepted request goes to the
queue worker and the caller follows it at its status URL (202 while it runs, then a terminal answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from shared.api.caller import Caller, identify
from shared.api.documents import (
    HealthCheck,
    HealthDocument,
    RequestList,
    plan_document,
    request_document,
    summary,
)
from shared.api.http import ApiRequest, ApiResponse, error_response
from shared.errors import (
    ConfigurationError,
    Conflict,
    IdempotencyConflict,
    InputError,
    NotFound,
)
from shared.models import Channel, RequestStatus
from shared.runtime import exomi_app, exomi_service
from shared.service import ExomiApp, ExomiService, StatusReport
from shared.state.idempotency import MAX_KEY_LENGTH
from shared.state.query import MAX_PAGE_SIZE
from shared.state.records import RequestRecord, utcnow

log = logging.getLogger("exomi.api")

API_CHANNELS = (Channel.HTTP, Channel.LOGICAPPS, Channel.TICKET)
IDEMPOTENCY_KEY = "Idempotency-Key"
LIST_FILTERS = ("status", "operation", "channel", "target", "external_reference")
LIST_PARAMETERS = (*LIST_FILTERS, "page_size", "continuation_token")
DEFAULT_PAGE_SIZE = 50
HEALTH_TIMEOUT_SECONDS = 10.0
# Terminal statuses that answer 200; failed and cancelled answer 422 (see docs/API.md).
SUCCESSFUL = (RequestStatus.SUCCEEDED, RequestStatus.REVOKED)


async def _open(request: ApiRequest, *, records: bool = True) -> tuple[ExomiService, Caller]:
    """The service and the caller; ``records`` False for reads, which record nothing (and so ignore
    X-Exomi-On-Behalf-Of)."""
    service = await exomi_service()
    return service, identify(request, service.app.settings, service.app.policy, asserted=records)


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
        submission = await submit(
            body, requested_by=caller.requested_by, channel=channel, idempotency_key=key
        )
    except IdempotencyConflict as error:
        return error_response(
            error,
            field=IDEMPOTENCY_KEY,
            original_request_url=request.url_for(_status_path(error.original_request_id)),
        )
    except Conflict as error:
        url = request.url_for(_status_path(error.active_request_id)) if error.active_request_id else None
        return error_response(error, field="target", active_request_url=url)
    if submission.created:
        await service.enqueue(submission.request)
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
    request_id = request.route_params.get("id", "")
    try:
        report = await service.status(request_id)
    except InputError:  # not even a request id
        raise NotFound("request", request_id[:80]) from None
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
) -> ApiResponse:
    record = report.request
    target = None
    if record.status is RequestStatus.SUCCEEDED:
        target = await service.app.state.targets.get(record.target_key)
    document = request_document(report, target, include_audit=include_audit)
    if accepted or record.status.active:
        # The asynchronous request-reply pattern: 202 + Location (+ Retry-After) until it ends.
        headers = {"Location": request.url_for(_status_path(record.id))}
        if record.status.active:
            headers["Retry-After"] = str(_retry_after(service, record))
        return ApiResponse(202, document, headers)
    return ApiResponse(200 if record.status in SUCCESSFUL else 422, document)


def _retry_after(service: ExomiService, record: RequestRecord) -> int:
    """Seconds until it is worth asking again: when a waiting request is due, else one poll interval."""
    timings = service.app.settings.engine
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


# ------------------------------------------------------------------------------ plan and diagnose


async def plan(request: ApiRequest) -> ApiResponse:
    """POST /plan: what provisioning would change; writes nothing. A policy refusal is a finding."""
    service, caller = await _open(request)
    body, channel = _request_body(request)
    report = await service.plan(body, requested_by=caller.requested_by, channel=channel)
    return ApiResponse(200, plan_document(report))


async def diagnose(request: ApiRequest) -> ApiResponse:
    """POST /diagnose: every prerequisite of a target against its desired state, with fixes."""
    service, caller = await _open(request)
    body, channel = _request_body(request)
    report = await service.diagnose(body, requested_by=caller.requested_by, channel=channel)
    return ApiResponse(200, plan_document(report))


# ------------------------------------------------------------------------------ health


async def health(request: ApiRequest) -> ApiResponse:
    """GET /health (anonymous): 200 when the settings load and storage answers, else 503. Details go
    to the log; the answer names what failed, never a value."""
    settings_ok, storage_ok = True, True
    settings_detail = storage_detail = None
    try:
        app = await asyncio.wait_for(exomi_app(), HEALTH_TIMEOUT_SECONDS)
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
            await asyncio.wait_for(_probe_storage(app), HEALTH_TIMEOUT_SECONDS)
        except Exception as error:  # noqa: BLE001
            log.error("health: storage probe failed: %s: %s", type(error).__name__, error)
            storage_ok, storage_detail = False, "storage does not answer (the app's log says why)"
    healthy = settings_ok and storage_ok
    document = HealthDocument(
        status="healthy" if healthy else "unhealthy",
        checks=[
            HealthCheck(name="settings", ok=settings_ok, detail=settings_detail),
            HealthCheck(name="storage", ok=storage_ok, detail=storage_detail),
        ],
    )
    return ApiResponse(200 if healthy else 503, document.model_dump(mode="json"))


async def _probe_storage(app: ExomiApp) -> None:
    """One read from the state tables and one from the work queue (a queue not created yet is fine)."""
    await app.state.requests.list(page_size=1)
    with contextlib.suppress(ResourceNotFoundError):
        await app.queue.client.get_queue_properties()
