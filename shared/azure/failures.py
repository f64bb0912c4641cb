"""Translate SDK exceptions into exomi's errors (shared.errors), so that nothing above the adapters
sees an SDK exception and every final error says how to fix it."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from kiota_abstractions.api_error import APIError

from shared import telemetry
from shared.errors import (
    AlreadyExists,
    AuthenticationFailed,
    ExomiError,
    PermissionMissing,
    Transient,
    UpstreamRejected,
)

TRANSIENT_STATUSES = {408, 429, 500, 502, 503, 504}


def _retry_after(headers: Any) -> float | None:
    if not headers:
        return None
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _answered(
    service: str, operation: str, status: int | None, code: str | None, message: str, headers: Any
) -> ExomiError:
    """What an error answer of ARM or Graph means, once a missing permission has been ruled out."""
    if status == 429:
        telemetry.count_throttled(service)  # the SDK's own retries did not get past it
    if status in TRANSIENT_STATUSES:
        return Transient(
            f"{service} answered {status} to '{operation}': {message}", retry_after=_retry_after(headers)
        )
    if status == 401:
        return AuthenticationFailed(f"{service} rejected exomi's token for '{operation}': {message}")
    return UpstreamRejected(service, operation, status, code, message)


def arm_status(exc: HttpResponseError) -> tuple[int | None, str | None, str]:
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    message = getattr(error, "message", None) or str(exc.message or exc)
    return exc.status_code, code, message


def from_arm(exc: Exception, operation: str) -> ExomiError:
    """Maps an azure-core exception raised by an ARM call to an exomi error."""
    if isinstance(exc, ExomiError):
        return exc
    if isinstance(exc, ClientAuthenticationError) and getattr(exc, "status_code", None) is None:
        return AuthenticationFailed(
            f"exomi could not get a token for Azure Resource Manager ({exc}). Check that the Function app's managed "
            "identity is enabled (or AZURE_CLIENT_ID names an identity attached to it)."
        )
    if isinstance(exc, ServiceRequestError | ServiceResponseError | asyncio.TimeoutError | TimeoutError):
        return Transient(f"Azure Resource Manager did not answer '{operation}': {exc}")
    if isinstance(exc, HttpResponseError):
        status, code, message = arm_status(exc)
        if status == 403 and code in ("AuthorizationFailed", "LinkedAuthorizationFailed"):
            found = re.findall(r"perform action(?:\(s\))? '([^']+)'", message)
            action = found[-1] if found else operation
            scope = re.search(r"(?:over scope|linked scope\(s\)) '([^']+)'", message)
            where = f" at scope {scope.group(1)}" if scope else ""
            return PermissionMissing(
                action,
                "Azure RBAC",
                f"assign exomi's managed identity a role that allows '{action}'{where} (see docs/PERMISSIONS.md for the roles exomi needs).",
                detail=message,
            )
        # azure-core types the response as a protocol without headers; its transport responses have them
        headers = getattr(exc.response, "headers", None)
        return _answered("Azure Resource Manager", operation, status, code, message, headers)
    return UpstreamRejected("Azure Resource Manager", operation, None, type(exc).__name__, str(exc))


def graph_error_code(exc: APIError) -> str | None:
    error = getattr(exc, "error", None)
    return getattr(error, "code", None)


# Graph answers a duplicate assignment with 400 Request_BadRequest, a code it gives to every bad request:
# only the message tells a duplicate from another mistake (../shared/reference/azure-wire.md D.2). These
# are the documented messages; the adapter matches them for the one operation each belongs to, so no
# step has to read an error's text.
DUPLICATE_MESSAGES = {
    "grant app role": "Permission being assigned already exists on the object",
    "assign Entra role": "A conflicting object with one or more of the specified property values is present",
}


def graph_duplicate(exc: APIError, operation: str) -> bool:
    """Whether Graph refused ``operation`` because what it creates exists already."""
    error = getattr(exc, "error", None)
    if graph_error_code(exc) == "Request_MultipleObjectsWithSameKeyValue":
        return True
    known = DUPLICATE_MESSAGES.get(operation)
    return (
        known is not None
        and exc.response_status_code == 400
        and graph_error_code(exc) == "Request_BadRequest"
        and (getattr(error, "message", None) or "").startswith(known)
    )


def from_graph(exc: Exception, operation: str, permission: str) -> ExomiError:
    """Maps a msgraph-sdk/kiota exception to an exomi error; ``permission`` is what the call needs."""
    if isinstance(exc, ExomiError):
        return exc
    if isinstance(exc, httpx.TransportError | asyncio.TimeoutError | TimeoutError):
        return Transient(f"Microsoft Graph did not answer '{operation}': {exc}")
    if isinstance(exc, ClientAuthenticationError):
        return AuthenticationFailed(f"exomi could not get a token for Microsoft Graph ({exc}).")
    if isinstance(exc, APIError):
        status = exc.response_status_code
        code = graph_error_code(exc)
        error = getattr(exc, "error", None)
        message = getattr(error, "message", None) or str(exc)
        if graph_duplicate(exc, operation):
            return AlreadyExists(operation, message)
        if status == 403:
            return PermissionMissing(
                permission,
                "Microsoft Graph",
                f"grant exomi's managed identity the Microsoft Graph application permission '{permission}' (an app role "
                "assignment on the Microsoft Graph service principal; see docs/PERMISSIONS.md).",
                detail=message,
            )
        return _answered("Microsoft Graph", operation, status, code, message, exc.response_headers)
    return UpstreamRejected("Microsoft Graph", operation, None, type(exc).__name__, str(exc))
