"""The API's route table and dispatcher.

Each route is one HTTP trigger in function_app.py, whose function name is the route's operation id.
The same table generates the OpenAPI document (openapi.py), so the document cannot drift from what
the app serves; a test checks the table against the functions the host indexed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel

from shared import telemetry
from shared.api import handlers
from shared.api.caller import ON_BEHALF_OF
from shared.api.documents import (
    CancelDocument,
    ErrorDocument,
    FindingList,
    HealthDocument,
    InventoryDocument,
    PlanDocument,
    RefusalList,
    RequestDocument,
    RequestList,
)
from shared.api.http import ApiRequest, ApiResponse, error_response
from shared.api.openapi import swagger
from shared.errors import ExomiError, InternalError, Transient
from shared.models import Channel, Operation, RequestStatus
from shared.state.idempotency import MAX_KEY_LENGTH
from shared.state.query import MAX_PAGE_SIZE

log = logging.getLogger("exomi.api")
Visibility = Literal["important", "advanced", "internal"]  # x-ms-visibility: how a connector shows it
Handler = Callable[[ApiRequest], Awaitable[ApiResponse]]


@dataclass(frozen=True)
class Parameter:
    name: str
    location: Literal["path", "query", "header"]
    description: str
    required: bool = False
    type: Literal["string", "integer"] = "string"
    enum: tuple[str, ...] = ()
    many: bool = False  # a comma-separated list
    minimum: int | None = None
    maximum: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    summary: str | None = None  # x-ms-summary, the connector's label (default: the name in title case)
    visibility: Visibility | None = None  # None: shown normally


@dataclass(frozen=True)
class Answer:
    description: str
    schema: type[BaseModel] | None = None  # None: any JSON object
    headers: tuple[str, ...] = ()  # names from openapi.HEADERS


@dataclass(frozen=True)
class Route:
    operation_id: str  # also the function's name in function_app.py
    method: Literal["GET", "POST"]
    path: str  # under /api
    handler: Handler
    summary: str
    description: str
    answers: Mapping[int, Answer]
    body: str | None = None  # the body's definition name (openapi.BODIES)
    parameters: tuple[Parameter, ...] = ()
    anonymous: bool = False  # else a function key is required
    tags: tuple[str, ...] = field(default=("requests",))
    visibility: Visibility | None = None  # x-ms-visibility of the connector action (None: shown normally)


ERRORS: dict[int, str] = {
    400: "The body is not valid JSON.",
    401: "No function key (the host answers with an empty body), or App Service Authentication is "
    "trusted and did not identify the caller.",
    403: "Refused by policy: error.rule names the policy field (rules for who may ask), error.field the "
    "request field. The attempt is recorded in the refusal log (GET /refusals).",
    404: "No request with this id.",
    409: "The target already has an active request (error.active_request_url), or the Idempotency-Key "
    "was used before with another body (error.original_request_url), or the request is not in a state "
    "that allows this (it has ended, is running a step, or does not await approval).",
    413: "The body is larger than 64 KiB.",
    415: "The body is not sent as application/json.",
    422: "A field, query parameter or header is invalid: error.field names it.",
    500: "exomi's settings or its own identity's permissions are unusable, or a bug: the message says which "
    "(the Function app's log has the details).",
    503: "Storage or Azure was briefly unavailable: retry after Retry-After.",
}
# Every route that works on exomi's state or Azure may answer these.
SERVER_ERRORS = (500, 503)


def errors(*statuses: int) -> dict[int, Answer]:
    return {status: Answer(ERRORS[status], ErrorDocument) for status in statuses}


IDEMPOTENCY = Parameter(
    "Idempotency-Key",
    "header",
    "Makes retries safe: the same key with the same body (from the same caller) answers with the "
    "original request instead of making a second one; the same key with another body is a 409.",
    max_length=MAX_KEY_LENGTH,
    visibility="advanced",
)
ON_BEHALF = Parameter(
    ON_BEHALF_OF,
    "header",
    "Whom the caller acts for (e.g. the ticket's requester); recorded with requested_by, marked as asserted.",
    max_length=100,
    summary="On Behalf Of",
    visibility="advanced",
)
ACCEPTED = Answer(
    "Accepted: follow Location (honouring Retry-After) until it answers 200 or 422.",
    RequestDocument,
    ("Location", "Retry-After", "Idempotent-Replayed"),
)
SUBMIT_ERRORS = errors(400, 401, 403, 409, 413, 415, 422, *SERVER_ERRORS)
READ_ERRORS = errors(400, 401, 403, 413, 415, 422, *SERVER_ERRORS)
GUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
REQUEST_ID = Parameter(
    "id",
    "path",
    "The request id.",
    required=True,
    pattern=GUID_PATTERN,
    summary="Request ID",
    visibility="important",
)


async def openapi_document(request: ApiRequest) -> ApiResponse:
    return ApiResponse(200, swagger(ROUTES, request.url))


ROUTES: tuple[Route, ...] = (
    Route(
        "create_request",
        "POST",
        "requests",
        handlers.create_request,
        "Request Exchange Online access for a managed identity",
        "Validates the request, checks it against policy and records it; the work runs in the "
        "background. Answers 202 with Location (the request's status URL) and Retry-After.",
        {202: ACCEPTED, **SUBMIT_ERRORS},
        body="CreateRequestBody",
        parameters=(IDEMPOTENCY, ON_BEHALF),
        visibility="important",
    ),
    Route(
        "list_requests",
        "GET",
        "requests",
        handlers.list_requests,
        "List requests",
        "Requests matching every given filter, oldest first, a page at a time (follow nextLink).",
        {200: Answer("A page of requests.", RequestList), **errors(401, 403, 422, *SERVER_ERRORS)},
        parameters=(
            Parameter(
                "status",
                "query",
                "Only requests in these states.",
                enum=tuple(s.value for s in RequestStatus),
                many=True,
            ),
            Parameter("operation", "query", "Only this operation.", enum=tuple(o.value for o in Operation)),
            Parameter("channel", "query", "Only this channel.", enum=tuple(c.value for c in Channel)),
            Parameter("target", "query", "Only requests for this target (an ARM resource id)."),
            Parameter("external_reference", "query", "Only requests with this external reference."),
            Parameter(
                "page_size",
                "query",
                f"Requests per page (default {handlers.DEFAULT_PAGE_SIZE}).",
                type="integer",
                minimum=1,
                maximum=MAX_PAGE_SIZE,
                visibility="advanced",
            ),
            Parameter(
                "continuation_token",
                "query",
                "From nextLink: where the next page starts.",
                visibility="advanced",
            ),
        ),
    ),
    Route(
        "get_request",
        "GET",
        "requests/{id}",
        handlers.get_request,
        "Get a request's status",
        "202 while the request is awaiting approval, queued, running or waiting (poll again after "
        "Retry-After); 200 when it succeeded (or, for a revocation, revoked); 422 when it failed, was "
        "cancelled or denied, with the reason in error. 422 is final: Logic Apps fails the action without retrying (it retries 408, 429, 5xx).",
        {
            200: Answer("The request succeeded (or was revoked).", RequestDocument),
            202: Answer(
                "The request is still active; poll Location again.",
                RequestDocument,
                ("Location", "Retry-After"),
            ),
            422: Answer("The request failed or was cancelled; error says why.", RequestDocument),
            **errors(401, 403, 404, *SERVER_ERRORS),
        },
        parameters=(
            REQUEST_ID,
            Parameter(
                "include",
                "query",
                "'audit' adds the request's audit records (other values are ignored).",
                visibility="advanced",
            ),
        ),
        visibility="important",
    ),
    Route(
        "decide_approval",
        "POST",
        "requests/{id}/approval",
        handlers.decide_approval,
        "Approve or deny a request",
        "For an approver the policy names (never the requester): approve a request that awaits approval "
        "(it is queued and runs) or deny it (it ends denied). Answers 200 with the request. Callable from "
        "a Logic Apps approval flow (docs/API.md).",
        {
            200: Answer(
                "The decision was recorded; the request as it is now.", RequestDocument, ("Location",)
            ),
            **errors(400, 401, 403, 404, 409, 413, 415, 422, *SERVER_ERRORS),
        },
        body="ApprovalBody",
        parameters=(REQUEST_ID,),
    ),
    Route(
        "cancel_request",
        "POST",
        "requests/{id}/cancel",
        handlers.cancel_request,
        "Cancel a request",
        "Ends a request that is queued, waiting or awaiting approval (its requester, an approver, or a "
        "caller the rules admit for the same target). What it had already changed stays in place and is "
        "listed in kept; revoke the target to take it away.",
        {
            200: Answer("The request was cancelled.", CancelDocument, ("Location",)),
            **errors(401, 403, 404, 409, *SERVER_ERRORS),
        },
        parameters=(REQUEST_ID,),
    ),
    Route(
        "list_findings",
        "GET",
        "findings",
        handlers.list_findings,
        "List findings",
        "Every target's latest findings, read from Microsoft Graph at the end of its last request and by "
        "the reconciliation timer: Global Administrator or another role above the one asked for, "
        "look-alikes of Exchange.ManageAsApp, grants exomi did not make, missing setup. Highest first.",
        {200: Answer("The findings.", FindingList), **errors(401, 403, 422, *SERVER_ERRORS)},
        parameters=(
            Parameter(
                "severity", "query", "Only findings at least this severe.", enum=("high", "medium", "low")
            ),
        ),
        tags=("audit",),
    ),
    Route(
        "get_inventory",
        "GET",
        "inventory",
        handlers.inventory,
        "Get the tenant inventory",
        "Every principal that holds an app role on Office 365 Exchange Online (Exchange.ManageAsApp or a "
        "look-alike) or a supported Entra role, read from Microsoft Graph now: managed by exomi, unmanaged, "
        "or orphaned (a managed identity whose resource is gone), and whether it is over-privileged.",
        {200: Answer("The inventory.", InventoryDocument), **errors(401, 403, 422, *SERVER_ERRORS)},
        tags=("audit",),
    ),
    Route(
        "list_refusals",
        "GET",
        "refusals",
        handlers.list_refusals,
        "List refused attempts",
        "Every refused attempt (who asked for what through which channel, the rule that refused it), "
        "oldest first, a page at a time. Refused attempts change nothing else.",
        {200: Answer("A page of refusals.", RefusalList), **errors(401, 403, 422, *SERVER_ERRORS)},
        parameters=(
            Parameter("since", "query", "Only refusals at or after this time (ISO 8601)."),
            Parameter("channel", "query", "Only this channel.", enum=tuple(c.value for c in Channel)),
            Parameter("target", "query", "Only refusals about this target (an ARM resource id)."),
            Parameter(
                "page_size",
                "query",
                f"Refusals per page (default {handlers.DEFAULT_PAGE_SIZE}).",
                type="integer",
                minimum=1,
                maximum=MAX_PAGE_SIZE,
                visibility="advanced",
            ),
            Parameter(
                "continuation_token",
                "query",
                "From nextLink: where the next page starts.",
                visibility="advanced",
            ),
        ),
        tags=("audit",),
    ),
    Route(
        "plan_request",
        "POST",
        "plan",
        handlers.plan,
        "Plan a request without applying it",
        "What a request with this body would change, step by step; nothing is written. A policy "
        "refusal is part of the answer (allowed false, refused), not an error.",
        {200: Answer("The plan.", PlanDocument), **READ_ERRORS},
        body="CreateRequestBody",
        parameters=(ON_BEHALF,),
    ),
    Route(
        "diagnose_target",
        "POST",
        "diagnose",
        handlers.diagnose,
        "Diagnose a target",
        "Each prerequisite of the target against its desired state (from the body, else what exomi "
        "provisioned, else the policy's defaults), with the fix; nothing is written.",
        {200: Answer("The diagnosis.", PlanDocument), **READ_ERRORS},
        body="DiagnoseBody",
        parameters=(ON_BEHALF,),
    ),
    Route(
        "create_revocation",
        "POST",
        "revocations",
        handlers.create_revocation,
        "Revoke a target's access",
        "Removes exactly what exomi granted for the target (a shared user-assigned identity keeps what "
        "other targets still need). Answers like create: 202, Location, Retry-After.",
        {202: ACCEPTED, **SUBMIT_ERRORS},
        body="RevocationBody",
        parameters=(IDEMPOTENCY, ON_BEHALF),
        visibility="important",
    ),
    Route(
        "get_health",
        "GET",
        "health",
        handlers.health,
        "Check health",
        "200 when the settings load and storage answers, else 503. No function key needed.",
        {
            200: Answer("Healthy.", HealthDocument),
            503: Answer("Unhealthy: checks says what failed.", HealthDocument),
        },
        anonymous=True,
        tags=("operations",),
        visibility="internal",
    ),
    Route(
        "get_openapi",
        "GET",
        "openapi.json",
        openapi_document,
        "Get the OpenAPI document",
        "OpenAPI 2.0 (Swagger), what a Logic Apps or Power Automate custom connector imports. No function key "
        "needed.",
        {200: Answer("The OpenAPI document.")},
        anonymous=True,
        tags=("operations",),
        visibility="internal",
    ),
)
BY_OPERATION: dict[str, Route] = {route.operation_id: route for route in ROUTES}


async def dispatch(operation_id: str, request: ApiRequest) -> ApiResponse:
    """Run the route's handler (one trace per API call; never with the URL or headers: they may carry
    the function key); every failure becomes the one error shape."""
    with telemetry.span(f"exomi.api {operation_id}") as current:
        response = await _answer(operation_id, request)
        telemetry.annotate(current, {telemetry.HTTP_STATUS: response.status})
        return response


async def _answer(operation_id: str, request: ApiRequest) -> ApiResponse:
    try:
        return await BY_OPERATION[operation_id].handler(request)
    except ExomiError as error:
        response = error_response(error)
        if isinstance(error, Transient):
            response.headers["Retry-After"] = str(max(1, round(error.retry_after or 1)))
        return response
    except Exception:
        log.exception("the API operation %s failed", operation_id)
        return error_response(
            InternalError("exomi could not answer; the Function app's log has the details.")
        )
