"""The request model shared by every channel (tags, HTTP, Logic Apps, tickets, CLI, reconcile).

`ProvisionRequest.parse(data)` / `RevokeRequest.parse(data)` turn untrusted input into validated
models or raise one `InputError` naming the (first) offending field, with every problem listed in
`InputError.problems`. Unknown fields are refused. Values are normalised on the way in: resource
ids to their canonical casing, the organization to lowercase, role and module names to their
canonical spelling.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Self, TypeVar
from urllib.parse import urlsplit

import isodate
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from shared.constants import DEFAULT_RUNBOOK_NAME, MODULE_NAMES, SUPPORTED_ROLES
from shared.errors import InputError
from shared.ids import (
    ResourceId,
    TargetKind,
    parse_resource_id,
    show,
    validate_domain,
    validate_host,
)

SYSTEM_IDENTITY = "system"
E = TypeVar("E", bound=StrEnum)
T = TypeVar("T")
MAX_REQUESTED_BY = 256
MAX_EXTERNAL_REFERENCE = 128
MAX_CALLBACK_URL = 2048
# Automation runbook names: a letter first, then letters, digits, '_' and '-', at most 63 characters.
_RUNBOOK_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")
# Runtime environment names also allow '.', as in the system environments ("PowerShell-7.2").
_RUNTIME_ENVIRONMENT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,62}[A-Za-z0-9]$")
# Azure allows 1-128 characters except <>*%&:\?.+/ (naming rules page); exomi takes the usual subset,
# since the name goes into ARM URLs.
_HYBRID_WORKER_GROUP_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
# Exact module versions (PowerShell Gallery style): 2-4 numeric parts and an optional prerelease label.
_VERSION_RE = re.compile(r"^\d{1,9}(?:\.\d{1,9}){1,3}(?:-[A-Za-z0-9]{1,20})?$")


def _canonical_member(enum: type[E], value: object) -> E | None:
    """Case- and whitespace-insensitive lookup, so 'exchange  administrator' means the role."""
    if not isinstance(value, str):
        return None
    wanted = " ".join(value.split()).lower()
    return next((member for member in enum if member.value.lower() == wanted), None)


class Role(StrEnum):
    """The Entra roles the procedure supports, by display name."""

    COMPLIANCE_ADMINISTRATOR = "Compliance Administrator"
    EXCHANGE_ADMINISTRATOR = "Exchange Administrator"
    EXCHANGE_RECIPIENT_ADMINISTRATOR = "Exchange Recipient Administrator"
    GLOBAL_ADMINISTRATOR = "Global Administrator"
    GLOBAL_READER = "Global Reader"
    HELPDESK_ADMINISTRATOR = "Helpdesk Administrator"
    SECURITY_ADMINISTRATOR = "Security Administrator"
    SECURITY_READER = "Security Reader"

    @classmethod
    def _missing_(cls, value: object) -> Role | None:
        return _canonical_member(cls, value)

    @property
    def template_id(self) -> str:
        return SUPPORTED_ROLES[self.value]


class ModuleName(StrEnum):
    PACKAGE_MANAGEMENT = MODULE_NAMES[0]
    POWERSHELL_GET = MODULE_NAMES[1]
    EXCHANGE_ONLINE_MANAGEMENT = MODULE_NAMES[2]

    @classmethod
    def _missing_(cls, value: object) -> ModuleName | None:
        return _canonical_member(cls, value)


class Runtime(StrEnum):
    """PowerShell runtime of the runbook: 5.1 uses the Automation modules API, 7.x runtime environments."""

    PS51 = "5.1"
    PS72 = "7.2"
    PS74 = "7.4"

    @property
    def uses_runtime_environment(self) -> bool:
        return self is not Runtime.PS51


class Channel(StrEnum):
    TAG = "tag"
    HTTP = "http"
    LOGICAPPS = "logicapps"
    TICKET = "ticket"
    CLI = "cli"
    RECONCILE = "reconcile"
    EXPIRY = "expiry"  # exomi takes access away when the duration a request asked for has passed


class Operation(StrEnum):
    PROVISION = "provision"
    REVOKE = "revoke"


class RequestStatus(StrEnum):
    AWAITING_APPROVAL = "awaiting_approval"  # nothing granted until an approver approves it
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REVOKED = "revoked"
    CANCELLED = "cancelled"
    DENIED = "denied"  # an approver denied it

    @property
    def active(self) -> bool:
        """An active request holds its target: no second request may start for it."""
        return self in (
            RequestStatus.AWAITING_APPROVAL,
            RequestStatus.QUEUED,
            RequestStatus.RUNNING,
            RequestStatus.WAITING,
        )

    @property
    def cancellable(self) -> bool:
        """A request that no engine pass is working on right now can be cancelled."""
        return self in (RequestStatus.AWAITING_APPROVAL, RequestStatus.QUEUED, RequestStatus.WAITING)


FUNCTION_KEY_CALLER = "function-key caller"


class RequesterKind(StrEnum):
    """How a channel identified the requester."""

    FUNCTION_KEY = "function-key"  # an HTTP caller with a function key and nothing more
    APP_SERVICE_AUTH = "app-service-auth"  # an HTTP caller App Service Authentication identified
    ARM = "arm"  # the writer of a resource or its tags, from the Event Grid event ARM sent
    OPERATOR = "operator"  # the exomi command, run with the operator's own Azure rights
    EXOMI = "exomi"  # exomi itself: reconciliation and expiry


class Requester(BaseModel):
    """Who asks: what a channel's authentication says, never a field of the request body. Policy rules
    match ``principal_id`` and ``principal_name``; ``name`` is what requests and audit records show."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: RequesterKind
    name: str  # recorded as requested_by
    principal_id: str | None = None  # object id, lower case with dashes
    principal_name: str | None = None  # UPN, name or app id
    # Tag writes: the Azure role ARM used to allow the write and the scope of that role assignment.
    azure_role: str | None = None
    azure_role_scope: str | None = None
    write_operation: str | None = None  # tag writes: the ARM operation, e.g. Microsoft.Resources/tags/write

    @property
    def wrote_tags(self) -> bool:
        """Did the write go through the Tags API (so the writer certainly wrote the tags)?"""
        return (self.write_operation or "").lower() in (
            "microsoft.resources/tags/write",
            "microsoft.resources/tags/delete",
        )

    @property
    def idempotency_scope(self) -> str:
        """Whose Idempotency-Keys these are: the authenticated principal (never a name it merely asserts)."""
        if self.kind is RequesterKind.FUNCTION_KEY:
            return FUNCTION_KEY_CALLER
        return f"{self.kind.value}:{self.principal_id or self.principal_name or self.name}"

    @property
    def identified(self) -> bool:
        return self.kind is not RequesterKind.FUNCTION_KEY

    def same_principal(self, other: Requester) -> bool:
        """Is ``other`` the same principal (by object id when both have one, else by name)?"""
        if self.principal_id and other.principal_id:
            return self.principal_id.replace("-", "").lower() == other.principal_id.replace("-", "").lower()
        mine = (self.principal_name or self.name).lower()
        return mine == (other.principal_name or other.name).lower()

    @classmethod
    def operator(cls, name: str) -> Requester:
        return cls(kind=RequesterKind.OPERATOR, name=name, principal_name=name)

    @classmethod
    def exomi(cls, name: str) -> Requester:
        return cls(kind=RequesterKind.EXOMI, name=name, principal_name=name)


class StepStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    WAITING = "waiting"
    FAILED = "failed"
    SKIPPED = "skipped"


class TargetStatus(StrEnum):
    """What exomi has done to a target overall (kept in the targets table)."""

    PROVISIONING = "provisioning"
    PROVISIONED = "provisioned"
    FAILED = "failed"
    REVOKING = "revoking"
    REVOKED = "revoked"


# --- field checks (each returns the normalised value or raises ValueError with a readable reason) ---


def _input_check(check: Callable[[Any, str], T]) -> Callable[[Any, ValidationInfo], T]:
    """Adapt an ids.py check (which raises InputError) to a pydantic validator (which needs ValueError)."""

    def validator(value: Any, info: ValidationInfo) -> T:
        try:
            return check(value, info.field_name or "value")
        except InputError as error:
            raise ValueError(error.reason) from None

    return validator


def _printable(max_length: int) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not value:
            raise ValueError("must not be empty")
        if len(value) > max_length:
            raise ValueError(f"is {len(value)} characters long; at most {max_length} are allowed")
        if not value.isprintable():
            raise ValueError("must contain printable characters only (no control characters or line breaks)")
        return value

    return check


def _check_version(value: str) -> str:
    if not _VERSION_RE.fullmatch(value):
        raise ValueError(f"{show(value)} is not an exact module version such as 3.5.1 or 1.4.8.1")
    return value


def _check_callback_url(value: str) -> str:
    if len(value) > MAX_CALLBACK_URL:
        raise ValueError(f"is {len(value)} characters long; at most {MAX_CALLBACK_URL} are allowed")
    if not value.isprintable() or any(ch.isspace() for ch in value):
        raise ValueError("must not contain spaces or control characters")
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError for a malformed port
    except ValueError:
        raise ValueError(f"{show(value)} is not a valid URL") from None
    if parts.scheme != "https":
        raise ValueError("must be an https:// URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not contain user names or passwords")
    if not parts.hostname:
        raise ValueError("must name a host")
    try:
        validate_host(parts.hostname, "callback_url")
    except InputError:
        raise ValueError(f"host {show(parts.hostname)} is not a valid DNS name or IP address") from None
    return value


def _check_expiry(value: str) -> str:
    """An ISO 8601 duration (kept as given, upper case) or a future UTC date / date-time (normalised)."""
    text = value.strip()
    if text[:1] in ("P", "p"):
        try:
            duration = isodate.parse_duration(text.upper())
        except (isodate.ISO8601Error, ValueError):
            raise ValueError(f"{show(value)} is not an ISO 8601 duration such as P30D or PT8H") from None
        now = datetime.now(UTC)
        if now + duration <= now:
            raise ValueError("must be a duration longer than zero")
        return text.upper()
    moment = expiry_moment(text)
    if moment <= datetime.now(UTC):
        raise ValueError(f"{show(value)} is in the past")
    return text


def expiry_moment(text: str) -> datetime:
    """The end of access a date or date-time names: a date means the end of that day (UTC), a time
    without a zone is UTC. ValueError for anything else."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day, datetime.min.time(), UTC) + timedelta(days=1)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{show(text)} is neither an ISO 8601 duration (P30D, PT8H) nor a date or time "
            "(2027-01-31, 2027-01-31T18:00:00Z)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


Text = Annotated[StrictStr, AfterValidator(_printable(MAX_REQUESTED_BY))]
Expiry = Annotated[StrictStr, AfterValidator(_printable(64)), AfterValidator(_check_expiry)]
Reference = Annotated[StrictStr, AfterValidator(_printable(MAX_EXTERNAL_REFERENCE))]
Version = Annotated[StrictStr, AfterValidator(_check_version)]
CallbackUrl = Annotated[StrictStr, AfterValidator(_check_callback_url)]


def _target(value: Any, field: str) -> str:
    return parse_resource_id(value, field).canonical


def _identity(value: Any, info: ValidationInfo, *, default: str | None) -> str | None:
    """'system' or a user-assigned identity id; for a user-assigned identity target, the target itself."""
    target = parse_resource_id(info.data["target"]) if "target" in info.data else None
    if target is not None and target.kind is TargetKind.USER_ASSIGNED_IDENTITY:
        if value is None or (isinstance(value, str) and value.lower() == target.canonical.lower()):
            return target.canonical
        raise ValueError(
            "for a user-assigned identity target the identity is the target itself; leave identity out"
        )
    if value is None:
        return default
    if isinstance(value, str) and value.lower() == SYSTEM_IDENTITY:
        return SYSTEM_IDENTITY
    try:
        return parse_resource_id(value, "identity", kinds=[TargetKind.USER_ASSIGNED_IDENTITY]).canonical
    except InputError as error:
        raise ValueError(
            f"must be 'system' or a user-assigned identity resource id: {error.reason}"
        ) from None


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    @classmethod
    def parse(cls, data: Mapping[str, Any] | str | bytes) -> Self:
        """Validate untrusted input (a mapping or JSON text); raise InputError naming the field."""
        try:
            if isinstance(data, str | bytes):
                return cls.model_validate_json(data)
            return cls.model_validate(data)
        except ValidationError as error:
            raise _input_error(cls, error) from None

    @property
    def target_id(self) -> ResourceId:
        return parse_resource_id(self.target)  # type: ignore[attr-defined]

    def fingerprint(self) -> str:
        """Canonical JSON of the validated request: equal for equal requests (used for idempotency)."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


class ProvisionRequest(_Request):
    """Give a target's managed identity Exchange Online PowerShell access."""

    target: StrictStr
    identity: StrictStr | None = Field(default=None, validate_default=True)
    organization: StrictStr
    role: Role | None = None  # None: the policy's default role
    runtime: Runtime = Runtime.PS51
    runtime_environment: StrictStr | None = Field(default=None, validate_default=True)
    module_versions: dict[ModuleName, Version] | None = None  # None: the policy's pinned versions
    runbook_name: StrictStr = DEFAULT_RUNBOOK_NAME
    # The account's Hybrid Runbook Worker group the runbooks run on; None: Azure's cloud sandbox.
    hybrid_worker_group: StrictStr | None = Field(default=None, validate_default=True)
    verify: StrictBool = True
    requested_by: Text
    channel: Channel
    external_reference: Reference | None = None
    callback_url: CallbackUrl | None = None  # https only; which hosts are allowed is policy's job
    # How long the access lasts: an ISO 8601 duration (P30D, PT8H) or a UTC date or time; None: until
    # revoked (if policy allows). Policy bounds it and turns it into Decision.expires_at.
    expires: Expiry | None = None

    _check_target = field_validator("target")(_input_check(_target))
    _check_organization = field_validator("organization")(_input_check(validate_domain))

    @field_validator("identity")
    @classmethod
    def _check_identity(cls, value: Any, info: ValidationInfo) -> str | None:
        return _identity(value, info, default=SYSTEM_IDENTITY)

    @field_validator("runtime_environment")
    @classmethod
    def _check_runtime_environment(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        runtime = info.data.get("runtime")
        target = info.data.get("target")
        if target is not None and parse_resource_id(target).kind is not TargetKind.AUTOMATION_ACCOUNT:
            raise ValueError("is only used for Automation account targets; leave it out")
        if runtime is not None and not runtime.uses_runtime_environment:
            raise ValueError("is only used with runtime 7.2 or 7.4 (runtime 5.1 uses the modules API)")
        if not _RUNTIME_ENVIRONMENT_RE.fullmatch(value):
            raise ValueError(
                f"{show(value)} is not a valid runtime environment name: 2-64 letters, digits, '_', '-' "
                "and '.', starting with a letter and ending with a letter or digit"
            )
        return value

    @field_validator("hybrid_worker_group")
    @classmethod
    def _check_hybrid_worker_group(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        target = info.data.get("target")
        if target is not None and parse_resource_id(target).kind is not TargetKind.AUTOMATION_ACCOUNT:
            raise ValueError("is only used for Automation account targets; leave it out")
        if not _HYBRID_WORKER_GROUP_RE.fullmatch(value):
            raise ValueError(
                f"{show(value)} is not a valid Hybrid Runbook Worker group name: 1-128 letters, digits, "
                "'_' and '-', starting with a letter or digit"
            )
        return value

    @field_validator("runbook_name")
    @classmethod
    def _check_runbook_name(cls, value: str) -> str:
        if not _RUNBOOK_NAME_RE.fullmatch(value):
            raise ValueError(
                f"{show(value)} is not a valid runbook name: 1-63 letters, digits, '_' and '-', "
                "starting with a letter"
            )
        return value

    @property
    def identity_id(self) -> ResourceId | None:
        """The user-assigned identity to use, or None for the target's system-assigned identity."""
        return None if self.identity == SYSTEM_IDENTITY else parse_resource_id(self.identity)


class RevokeRequest(_Request):
    """Take away what exomi granted for a target (for a shared user-assigned identity, only when unused)."""

    target: StrictStr
    identity: StrictStr | None = Field(default=None, validate_default=True)  # None: what exomi recorded
    requested_by: Text
    channel: Channel
    external_reference: Reference | None = None

    _check_target = field_validator("target")(_input_check(_target))

    @field_validator("identity")
    @classmethod
    def _check_identity(cls, value: Any, info: ValidationInfo) -> str | None:
        return _identity(value, info, default=None)


def _input_error(model: type[BaseModel], error: ValidationError) -> InputError:
    problems = [
        {"field": _field_path(item["loc"]), "message": _reason(model, item)}
        for item in error.errors(include_url=False)
    ]
    first = problems[0]
    return InputError(first["field"], first["message"], problems=problems)


def _field_path(loc: tuple[int | str, ...]) -> str:
    parts = [str(part) for part in loc if part != "[key]"]
    return ".".join(parts) or "body"


def _reason(model: type[BaseModel], item: Any) -> str:
    kind = item["type"]
    if kind == "value_error":
        return str(item["ctx"]["error"])
    if kind == "extra_forbidden":
        return f"is not a known field; known fields are: {', '.join(model.model_fields)}"
    if kind == "missing":
        return "is required"
    if kind in ("model_type", "model_attributes_type", "dict_type") and not item["loc"]:
        return "the request body must be a JSON object"
    if kind == "json_invalid":
        return f"the request body is not valid JSON ({item['ctx']['error']})"
    return str(item["msg"])
