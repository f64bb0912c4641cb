"""The error taxonomy of exomi.

Every failure the app reports is one of these classes. Each has a stable `code` (for API answers and
state), an HTTP status the API layer can answer with, a `category` that tells the engine what to do
next (retry soon, wait for replication or propagation, or stop), and a user-facing message that says
what went wrong and how to fix it. Adapters map SDK exceptions into these; nothing above the
adapters sees an SDK exception.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar


class ErrorCategory(StrEnum):
    """What the engine does with an error."""

    TRANSIENT = "transient"  # retry with backoff (429, 5xx, timeouts, lost ETag races)
    REPLICATION = "replication"  # a fresh principal is not visible yet: retry with backoff
    FINAL = "final"  # retrying cannot help: the request fails with the message


class ExomiError(Exception):
    """Base class: a stable code, a category, an HTTP status and a message meant for people."""

    code: ClassVar[str] = "Error"
    category: ClassVar[ErrorCategory] = ErrorCategory.FINAL
    http_status: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def retryable(self) -> bool:
        return self.category is not ErrorCategory.FINAL

    def details(self) -> dict[str, Any]:
        """Structured fields that subclasses add (field, rule, permission, ...)."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape used in API answers and in state: {"code", "message", ...details}."""
        return {"code": self.code, "message": self.message, **self.details()}


class InputError(ExomiError):
    """The request is malformed; `field` names the offending field (dotted path for nested ones)."""

    code = "InvalidInput"
    http_status = 400

    def __init__(self, field: str, message: str, *, problems: list[dict[str, str]] | None = None) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message
        # Every problem found, when validation found more than one; the first is `field`/`reason`.
        self.problems = problems or [{"field": field, "message": message}]

    def details(self) -> dict[str, Any]:
        return {"field": self.field, "problems": self.problems}


class ConfigurationError(ExomiError):
    """An app setting or the policy is invalid: the app refuses to start with it."""

    code = "InvalidConfiguration"
    http_status = 500

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"setting {setting}: {message}")
        self.setting = setting

    def details(self) -> dict[str, Any]:
        return {"setting": self.setting}


class PolicyRefusal(ExomiError):
    """The request is valid but policy does not allow it; `rule` names the policy field that refused it."""

    code = "PolicyRefused"
    http_status = 403

    def __init__(self, rule: str, message: str, fix: str, *, field: str | None = None) -> None:
        super().__init__(f"refused by policy rule '{rule}': {message} To fix: {fix}")
        self.rule = rule
        self.reason = message
        self.fix = fix
        self.field = field  # the request field the refusal is about, when there is one

    def details(self) -> dict[str, Any]:
        return {"rule": self.rule, "fix": self.fix, **({"field": self.field} if self.field else {})}


class PermissionMissing(ExomiError):
    """exomi's own identity lacks a permission; retrying cannot help until an admin grants it."""

    code = "PermissionMissing"
    http_status = 500

    def __init__(self, permission: str, service: str, fix: str, *, detail: str | None = None) -> None:
        text = f"exomi's own identity lacks the {service} permission '{permission}'."
        if detail:
            text += f" ({detail})"
        super().__init__(f"{text} To fix: {fix}")
        self.permission = permission
        self.service = service
        self.fix = fix

    def details(self) -> dict[str, Any]:
        return {"permission": self.permission, "service": self.service, "fix": self.fix}


class Transient(ExomiError):
    """Throttling, a 5xx or a timeout: try again, after `retry_after` seconds when the service said so."""

    code = "Transient"
    category = ErrorCategory.TRANSIENT
    http_status = 503

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def details(self) -> dict[str, Any]:
        return {} if self.retry_after is None else {"retry_after": self.retry_after}


class ConcurrencyError(Transient):
    """Someone else changed the entity since it was read (ETag mismatch): re-read, then retry."""

    code = "ConcurrencyConflict"
    http_status = 409

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} was changed by another writer since it was read; re-read it and try again.")
        self.what = what


class ReplicationPending(ExomiError):
    """A freshly created principal is not visible yet (Request_ResourceNotFound / PrincipalNotFound)."""

    code = "ReplicationPending"
    category = ErrorCategory.REPLICATION
    http_status = 503

    def __init__(self, object_id: str, message: str | None = None) -> None:
        super().__init__(
            message
            or f"principal {object_id} is not visible in the directory yet (replication delay); retrying."
        )
        self.object_id = object_id

    def details(self) -> dict[str, Any]:
        return {"object_id": self.object_id}


class NotFound(ExomiError):
    """Something the request names does not exist (a request id, a target resource, ...)."""

    code = "NotFound"
    http_status = 404

    def __init__(self, what: str, identifier: str) -> None:
        super().__init__(f"{what} '{identifier}' was not found.")
        self.what = what
        self.identifier = identifier

    def details(self) -> dict[str, Any]:
        return {"what": self.what, "identifier": self.identifier}


class Conflict(ExomiError):
    """The target already has an active request; wait for it to finish or cancel it."""

    code = "Conflict"
    http_status = 409

    def __init__(self, message: str, *, active_request_id: str | None = None) -> None:
        super().__init__(message)
        self.active_request_id = active_request_id

    def details(self) -> dict[str, Any]:
        return {} if self.active_request_id is None else {"active_request_id": self.active_request_id}


class IdempotencyConflict(Conflict):
    """An idempotency key was reused by the same caller with a different request body."""

    code = "IdempotencyKeyReused"

    def __init__(self, original_request_id: str) -> None:
        super().__init__(
            f"this idempotency key was already used for request {original_request_id} with a different "
            "body; send the same body to get that request back, or use a new key for a new request.",
        )
        self.original_request_id = original_request_id

    def details(self) -> dict[str, Any]:
        return {"original_request_id": self.original_request_id}


class PrerequisiteMissing(ExomiError):
    """Something exomi cannot (or must not) create itself is missing or wrong in the tenant: the
    identity is not enabled or not attached, a runbook of that name belongs to someone else, ...
    ``what`` names it; the message says how to fix it."""

    code = "PrerequisiteMissing"
    http_status = 409

    def __init__(self, what: str, message: str, fix: str) -> None:
        super().__init__(f"{message} To fix: {fix}")
        self.what = what
        self.fix = fix

    def details(self) -> dict[str, Any]:
        return {"what": self.what, "fix": self.fix}


class OperationFailed(ExomiError):
    """Azure ran what exomi asked for and it failed (a module import, a verification job); the
    message carries Azure's own error text."""

    code = "OperationFailed"
    http_status = 502

    def __init__(self, operation: str, message: str, fix: str | None = None) -> None:
        super().__init__(message + (f" To fix: {fix}" if fix else ""))
        self.operation = operation
        self.fix = fix

    def details(self) -> dict[str, Any]:
        return {"operation": self.operation, **({"fix": self.fix} if self.fix else {})}


class RequestEnded(ExomiError):
    """A request ended without running to completion; ``by`` names who ended it (None: exomi itself)."""

    http_status = 422

    def __init__(self, message: str, *, by: str | None = None) -> None:
        super().__init__(message)
        self.by = by

    def details(self) -> dict[str, Any]:
        return {} if self.by is None else {"by": self.by}


class Cancelled(RequestEnded):
    code = "Cancelled"


class ApprovalDenied(RequestEnded):
    code = "ApprovalDenied"


class ApprovalExpired(RequestEnded):
    """Nobody approved or denied the request before the policy's approval timeout."""

    code = "ApprovalExpired"


class GaveUp(ExomiError):
    """The work queue gave up on a request: processing it failed on every retry."""

    code = "GaveUp"
    http_status = 500


class RecordedError(ExomiError):
    """An error read back from state (a step's stored error), to end its request with."""

    def __init__(self, recorded: dict[str, Any]) -> None:
        super().__init__(str(recorded.get("message") or "failed"))
        self.recorded = dict(recorded)

    def to_dict(self) -> dict[str, Any]:
        return {"code": "Error", **self.recorded, "message": self.message}


# --- raised by the adapters (shared/azure/)


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


class AlreadyExists(ExomiError):
    """Azure refused to create something because it exists already (a duplicate grant made meanwhile,
    e.g. by a concurrent run): the caller reads it back instead. Adapters raise it from the answer's
    status and code (shared/azure/failures.py)."""

    code = "AlreadyExists"
    http_status = 409

    def __init__(self, what: str, message: str) -> None:
        super().__init__(f"{what} exists already: {message}")
        self.what = what

    def details(self) -> dict[str, Any]:
        return {"what": self.what}


# --- raised by the channels (shared/api/, shared/events.py, shared/tags.py)


class MalformedJson(ExomiError):
    code = "MalformedJson"
    http_status = 400


class PayloadTooLarge(ExomiError):
    code = "PayloadTooLarge"
    http_status = 413


class UnsupportedMediaType(ExomiError):
    code = "UnsupportedMediaType"
    http_status = 415


class NotAuthenticated(ExomiError):
    """App Service Authentication is trusted, but it did not identify the caller."""

    code = "NotAuthenticated"
    http_status = 401


class InternalError(ExomiError):
    code = "InternalError"
    http_status = 500


class TagError(ExomiError):
    """A tag's value is not valid; ``tag`` names it (shared/tags.py)."""

    code = "InvalidTag"
    http_status = 422

    def __init__(self, tag: str, reason: str) -> None:
        super().__init__(f"tag {tag}: {reason}")
        self.tag = tag
        self.reason = reason


class TargetBusy(ExomiError):
    """The desired state changed while a request already works on the target: handle the event later."""

    code = "TargetBusy"
    http_status = 503
