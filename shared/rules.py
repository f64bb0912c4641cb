"""The policy's data types for *who may ask for what*: scopes, principal patterns, caller rules, approval
and expiry settings (docs/POLICY.md). Pure data with validation; ``shared/authorization.py`` evaluates
them and ``shared/policy.py`` puts them together with the rest of the policy.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any

import isodate
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    StrictStr,
    model_validator,
)

from shared.errors import InputError
from shared.ids import ResourceId, validate_guid, validate_resource_group_name
from shared.models import FUNCTION_KEY_CALLER, Channel, Operation, Requester, RequesterKind, Role, Runtime

_SCOPE_RE = re.compile(r"^/subscriptions/([^/]+)(?:/resourceGroups/([^/]+))?$", re.IGNORECASE)
_GUID_RE = re.compile(r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$", re.IGNORECASE)
_RULE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")
MAX_CALLER_PATTERN = 256
MAX_AZURE_ROLE_NAME = 128
# Channels a caller rule can name. The others are operator channels: the exomi command (run with the
# operator's own Azure rights), reconciliation and expiry (exomi itself); allowed_channels governs them.
RULE_CHANNELS = (Channel.TAG, Channel.HTTP, Channel.LOGICAPPS, Channel.TICKET)
# Built-in Azure roles that allow writing tags without any access to the resource itself: a tag write
# authorised by one of them is admitted only by a rule that names that role in target_roles.
TAG_ONLY_ROLES = frozenset({"tag contributor"})


class Scope(BaseModel):
    """A subscription, or resource groups in it: an exact name, or a name prefix ending in '*'."""

    model_config = ConfigDict(frozen=True)

    subscription_id: str
    resource_group: str | None = None  # None: the whole subscription
    prefix: bool = False

    @classmethod
    def parse(cls, text: str, field: str) -> Scope:
        match = _SCOPE_RE.fullmatch(text)
        if not match:
            raise InputError(
                field,
                f"{text!r} is not a scope: use /subscriptions/<id> or /subscriptions/<id>/resourceGroups/<name> "
                "(end the name with '*' to allow every resource group starting with it)",
            )
        subscription_id = validate_guid(match.group(1), field)
        group = match.group(2)
        if group is None:
            return cls(subscription_id=subscription_id)
        prefix = group.endswith("*")
        name = group.removesuffix("*")
        if prefix:
            validate_resource_group_name(name + "x", field)  # a prefix may end in '.', a name may not
        else:
            validate_resource_group_name(name, field)
        return cls(subscription_id=subscription_id, resource_group=name, prefix=prefix)

    def contains(self, resource: ResourceId) -> bool:
        if resource.subscription_id != self.subscription_id:
            return False
        if self.resource_group is None:
            return True
        group, wanted = resource.resource_group.lower(), self.resource_group.lower()
        return group.startswith(wanted) if self.prefix else group == wanted

    def __str__(self) -> str:
        text = f"/subscriptions/{self.subscription_id}"
        if self.resource_group is not None:
            text += f"/resourceGroups/{self.resource_group}{'*' if self.prefix else ''}"
        return text


def checked(check: Any, field: str) -> Any:
    """A pydantic validator from an ids.py-style check (which raises InputError)."""

    def validator(value: Any) -> Any:
        if not isinstance(value, str):
            return value  # let pydantic report the type error
        try:
            return check(value, field)
        except InputError as error:
            raise ValueError(error.reason) from None

    return validator


def _scope(value: Any) -> Scope:
    if isinstance(value, Scope):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a scope string such as /subscriptions/<id>/resourceGroups/<name>")
    return checked(Scope.parse, "scope")(value)


ScopeEntry = Annotated[Scope, BeforeValidator(_scope), PlainSerializer(str)]


def in_scopes(resource: ResourceId, scopes: list[Scope]) -> bool:
    return any(scope.contains(resource) for scope in scopes)


# --------------------------------------------------------------------------------------- principals


def _check_caller_pattern(value: str) -> str:
    if not value or len(value) > MAX_CALLER_PATTERN or not value.isprintable():
        raise ValueError(
            f"must be 1-{MAX_CALLER_PATTERN} printable characters: a principal object id or a name "
            "pattern such as '*@contoso.com'"
        )
    return value


CallerPattern = Annotated[StrictStr, AfterValidator(_check_caller_pattern)]


def _dashless(text: str) -> str:
    return text.replace("-", "").lower()


def principal_matches(pattern: str, requester: Requester) -> bool:
    """Does a policy entry name this requester? An object id matches the principal's object id exactly
    (with or without dashes); any other entry is a name pattern in which '*' stands for any characters
    (case ignored). A caller nobody identified (the function-key caller) matches only the literal entry
    'function-key caller', never a pattern such as '*'."""
    if requester.kind is RequesterKind.FUNCTION_KEY:
        return pattern.strip().lower() == FUNCTION_KEY_CALLER
    if _GUID_RE.fullmatch(pattern):
        return requester.principal_id is not None and _dashless(pattern) == _dashless(requester.principal_id)
    name = requester.principal_name
    if name is None:
        return False
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, name, re.IGNORECASE | re.DOTALL) is not None


def names_any(patterns: list[str], requester: Requester) -> bool:
    return any(principal_matches(pattern, requester) for pattern in patterns)


# --------------------------------------------------------------------------------------- durations


def parse_duration(text: str) -> timedelta | isodate.Duration:
    """An ISO 8601 duration (P30D, PT8H, P1M); ValueError unless it is one and longer than zero."""
    if not isinstance(text, str) or not text.upper().startswith("P"):
        raise ValueError(f"{text!r} is not an ISO 8601 duration such as P30D or PT8H")
    try:
        duration = isodate.parse_duration(text.upper())
    except (isodate.ISO8601Error, ValueError):
        raise ValueError(f"{text!r} is not an ISO 8601 duration such as P30D or PT8H") from None
    reference = datetime(2000, 1, 1)
    if reference + duration <= reference:
        raise ValueError(f"{text!r} must be longer than zero")
    return duration


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value.upper()


IsoDuration = Annotated[StrictStr, AfterValidator(_check_duration)]


def _check_azure_role(value: str) -> str:
    if not value.strip() or len(value) > MAX_AZURE_ROLE_NAME or not value.isprintable() or "*" in value:
        raise ValueError(
            f"must be the name of an Azure role such as Owner or Contributor (1-{MAX_AZURE_ROLE_NAME} "
            "printable characters, no wildcards)"
        )
    return " ".join(value.split())


AzureRoleName = Annotated[StrictStr, AfterValidator(_check_azure_role)]


def _check_rule_name(value: str) -> str:
    if not _RULE_NAME_RE.fullmatch(value):
        raise ValueError(
            "must be 1-64 letters, digits, spaces, '_', '.' or '-', starting with a letter or digit"
        )
    return value


def _rule_channel(value: Any) -> Any:
    if isinstance(value, str) and value in {c.value for c in Channel} and Channel(value) not in RULE_CHANNELS:
        raise ValueError(
            f"'{value}' is an operator channel (the exomi command, reconciliation, expiry): allowed_channels "
            f"governs it; a rule names one of {', '.join(c.value for c in RULE_CHANNELS)}"
        )
    return value


RuleChannel = Annotated[Channel, BeforeValidator(_rule_channel)]


# --------------------------------------------------------------------------------------- rules


class AccessRule(BaseModel):
    """Who may ask for what, through which channels. A request is allowed only if some rule admits its
    requester for its target, identity, role, runtime and operation (docs/POLICY.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[StrictStr, AfterValidator(_check_rule_name)]
    channels: list[RuleChannel] = Field(min_length=1)
    # Who: object ids and name patterns ('*@contoso.com'). Empty: anyone target_roles admits.
    principals: list[CallerPattern] = []
    # Azure roles the requester must hold on the target (and on a user-assigned identity it names):
    # for tag writes the role ARM used to allow the write, for HTTP callers read from ARM.
    target_roles: list[AzureRoleName] = []
    operations: list[Operation] = Field(default=[Operation.PROVISION, Operation.REVOKE], min_length=1)
    scopes: list[ScopeEntry] = []  # empty: every allowed scope
    roles: list[Role] = []  # Entra roles; empty: every allowed role
    runtimes: list[Runtime] = []  # empty: every allowed runtime
    require_approval: StrictBool = False

    @model_validator(mode="after")
    def _names_someone(self) -> AccessRule:
        if not self.principals and not self.target_roles:
            raise ValueError(
                "names nobody: give principals (object ids or name patterns), target_roles (Azure roles "
                "the requester must hold on the target), or both"
            )
        return self


class ApprovalPolicy(BaseModel):
    """Which requests wait for an approver, who may approve, and how long a request waits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    approvers: list[CallerPattern] = []
    required_for_roles: list[Role] = []
    required_for_scopes: list[ScopeEntry] = []
    required_for_channels: list[Channel] = []
    timeout: IsoDuration = "P2D"

    @property
    def required_anywhere(self) -> bool:
        return bool(self.required_for_roles or self.required_for_scopes or self.required_for_channels)


class ExpiryPolicy(BaseModel):
    """How long access may last, per Entra role, and for which roles a duration is mandatory."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_duration: dict[Role, IsoDuration] = {}
    default_max_duration: IsoDuration | None = None  # roles not in max_duration; None: no limit
    required_for_roles: list[Role] = []

    def limit_for(self, role: Role) -> str | None:
        return self.max_duration.get(role, self.default_max_duration)
