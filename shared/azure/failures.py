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

from shared.errors import ExomiError, PermissionMissing, Transient

TRANSIENT_STATUSES = {408, 429, 500, 502, 503, 504}


class UpstreamRejected(ExomiError):
    """Azure refused a call for a reason that retrying cannot fix (a 400, or a 404 of something required)."""

    code = "AzureRejected"
    http_status = 502

    def __init__(
        self, service: str, operation: str, status: int | None, error_code: str | None, message: str
    ) -> None:
        super().__init__(f"{service} refused '{operation}' ({status} {error_code}): {message}")
        self.service = service
        self.operation = operation
        self.status = status
        self.error_code = error_code

    def details(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "operation": self.operation,
            "status": self.status,
            "error_code": self.error_code,
        }


class AuthenticationFailed(ExomiError):
    """exomi could not get or use a token for its own identity."""

    code = "AuthenticationFailed"
    http_status = 500


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
