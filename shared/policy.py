"""Policy as data: which requests exomi accepts, and the effective values it uses for them.

The policy is JSON (format and default in docs/POLICY.md). `load_policy` reads it from the app setting
EXOMI_POLICY (JSON text) or the file named by EXOMI_POLICY_FILE, laid over the packaged safe default
(`default_policy.json`): top-level fields you leave out keep their default. A bad policy raises
`ConfigurationError` naming the field. `Policy.evaluate(request)` returns a `Decision`: either the
effective role, module versions and runtime environment, or a refusal naming the rule and the fix.
Policy is evaluated before anything is written, so a refused request leaves no trace.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    StrictBool,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from shared.constants import RUNTIME_ENVIRONMENT_NAME_FORMAT
from shared.errors import ConfigurationError, InputError, PolicyRefusal
from shared.ids import (
    ResourceId,
    TargetKind,
    domain_matches,
    validate_domain_pattern,
    validate_guid,
    validate_host_pattern,
    validate_resource_group_name,
)
from shared.models import Channel, ModuleName, ProvisionRequest, RevokeRequest, Role, Runtime, Version

_WHERE = "in the exomi policy (app setting EXOMI_POLICY or the file named by EXOMI_POLICY_FILE)"
_SCOPE_RE = re.compile(r"^/subscriptions/([^/]+)(?:/resourceGroups/([^/]+))?$", re.IGNORECASE)


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


class Decision(BaseModel):
    """The outcome of evaluating a request: effective values when allowed, the refusal otherwise."""

    model_config = ConfigDict(frozen=True)

    allowed: bool
    rule: str | None = None  # the policy field that refused the request
    field: str | None = None  # the request field the refusal is about (None: the caller)
    reason: str | None = None
    fix: str | None = None
    role: Role | None = None
    role_template_id: str | None = None
    runtime: Runtime | None = None
    runtime_environment: str | None = None  # None for runtime 5.1 and for targets that are not Automation
    module_versions: dict[ModuleName, str] = {}
    runbook_name: str | None = None

    def refusal(self) -> PolicyRefusal | None:
        if self.allowed:
            return None
        return PolicyRefusal(
            self.rule or "policy", self.reason or "refused", self.fix or "", field=self.field
        )

    def raise_if_refused(self) -> Decision:
        refusal = self.refusal()
        if refusal is not None:
            raise refusal
        return self


def _refused(rule: str, reason: str, fix: str, field: str | None = None) -> Decision:
    return Decision(allowed=False, rule=rule, reason=reason, fix=fix, field=field)


def default_runtime_environment(runtime: Runtime) -> str:
    major, minor = runtime.value.split(".")
    return RUNTIME_ENVIRONMENT_NAME_FORMAT.format(major=major, minor=minor)


def _checked(check: Any, field: str) -> Any:
    """A list-item validator from an ids.py-style check (which raises InputError)."""

    def validator(value: Any) -> Any:
        if not isinstance(value, str):
            return value  # let pydantic report the type error
        try:
            return check(value, field)
        except InputError as error:
            raise ValueError(error.reason) from None

    return validator


OrganizationPattern = Annotated[
    StrictStr, AfterValidator(_checked(validate_domain_pattern, "allowed_organizations"))
]
HostPattern = Annotated[StrictStr, AfterValidator(_checked(validate_host_pattern, "callback_hosts"))]
MAX_CALLER_PATTERN = 256


def _check_caller_pattern(value: str) -> str:
    if not value or len(value) > MAX_CALLER_PATTERN or not value.isprintable():
        raise ValueError(
            f"must be 1-{MAX_CALLER_PATTERN} printable characters: a principal object id or a name "
            "pattern such as '*@contoso.com'"
        )
    return value


CallerPattern = Annotated[StrictStr, AfterValidator(_check_caller_pattern)]


def caller_matches(pattern: str, principal_id: str | None, name: str | None) -> bool:
    """An allowed_callers entry matches the principal's object id exactly, or its name as a pattern in
    which '*' stands for any characters (both ignore case)."""
    if principal_id is not None and pattern.lower() == principal_id.lower():
        return True
    if name is None:
        return False
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, name, re.IGNORECASE | re.DOTALL) is not None


def _scope(value: Any) -> Scope:
    if isinstance(value, Scope):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a scope string such as /subscriptions/<id>/resourceGroups/<name>")
    return _checked(Scope.parse, "allowed_scopes")(value)


ScopeEntry = Annotated[Scope, BeforeValidator(_scope), PlainSerializer(str)]


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    allowed_organizations: list[OrganizationPattern]
    allowed_scopes: list[ScopeEntry]
    allowed_roles: list[Role]
    allow_global_administrator: StrictBool
    default_role: Role
    allowed_runtimes: list[Runtime]
    pinned_module_versions: dict[Runtime, dict[ModuleName, Version]]
    allow_unpinned_module_versions: StrictBool
    callback_hosts: list[HostPattern]
    allowed_channels: list[Channel]
    heal_drift: StrictBool  # reconciliation re-provisions what went missing (else it only reports)
    allowed_callers: list[CallerPattern]

    @field_validator("default_role")
    @classmethod
    def _check_default_role(cls, role: Role, info: ValidationInfo) -> Role:
        if "allowed_roles" in info.data and role not in info.data["allowed_roles"]:
            raise ValueError(f"'{role}' must also be listed in allowed_roles")
        if role is Role.GLOBAL_ADMINISTRATOR and not info.data.get("allow_global_administrator"):
            raise ValueError("cannot be Global Administrator unless allow_global_administrator is true")
        return role

    @field_validator("pinned_module_versions")
    @classmethod
    def _check_pins(
        cls, pins: dict[Runtime, dict[ModuleName, str]], info: ValidationInfo
    ) -> dict[Runtime, dict[ModuleName, str]]:
        for runtime in info.data.get("allowed_runtimes", []):
            missing = [name.value for name in ModuleName if name not in pins.get(runtime, {})]
            if missing:
                raise ValueError(
                    f"has no version of {', '.join(missing)} for runtime {runtime}, which allowed_runtimes allows"
                )
        return pins

    def check_caller(self, principal_id: str | None, name: str | None) -> Decision:
        """May this HTTP API caller use exomi? Callers are identified (principal_id/name not None) only
        through trusted App Service Authentication; an empty allowed_callers admits every caller."""
        if not self.allowed_callers:
            return Decision(allowed=True)
        if principal_id is None and name is None:
            return _refused(
                "allowed_callers",
                "the policy admits only listed callers, and this caller is not identified (callers are "
                "identified only by App Service Authentication).",
                "call with a token through App Service Authentication (the exomi operator enables it and "
                f"sets EXOMI_TRUST_APP_SERVICE_AUTH=true), or ask the operator to empty allowed_callers {_WHERE}.",
            )
        if any(caller_matches(pattern, principal_id, name) for pattern in self.allowed_callers):
            return Decision(allowed=True)
        who = name or principal_id
        return _refused(
            "allowed_callers",
            f"caller '{who}' is not allowed.",
            f"ask the exomi operator to add your principal's object id ({principal_id or 'unknown'}) or a "
            f"pattern matching your name to allowed_callers {_WHERE}.",
        )

    def evaluate(self, request: ProvisionRequest | RevokeRequest) -> Decision:
        """Check a validated request against the policy; never raises for a refusal (see Decision)."""
        if request.channel not in self.allowed_channels:
            return _refused(
                "allowed_channels",
                f"requests through channel '{request.channel}' are not allowed.",
                f"use another channel, or ask the exomi operator to add '{request.channel}' to allowed_channels {_WHERE}.",
                field="channel",
            )
        if isinstance(request, RevokeRequest):
            # Taking access away is always allowed: scopes or roles narrowed later must not block it.
            return Decision(allowed=True)
        return self._evaluate_provision(request)

    def _evaluate_provision(self, request: ProvisionRequest) -> Decision:
        if not any(domain_matches(request.organization, pattern) for pattern in self.allowed_organizations):
            return _refused(
                "allowed_organizations",
                f"organization '{request.organization}' is not allowed.",
                f"ask the exomi operator to add '{request.organization}' (or a '*.' pattern covering it) "
                f"to allowed_organizations {_WHERE}.",
                field="organization",
            )
        for field, resource in (("target", request.target_id), ("identity", request.identity_id)):
            if resource is not None and not any(scope.contains(resource) for scope in self.allowed_scopes):
                return _refused(
                    "allowed_scopes",
                    f"the {field} {resource.canonical} is outside the allowed scopes.",
                    f"use a resource in an allowed subscription or resource group, or ask the exomi operator "
                    f"to add '{resource.subscription_scope}' or '{resource.resource_group_id}' to "
                    f"allowed_scopes {_WHERE}.",
                    field=field,
                )
        role = request.role or self.default_role
        if role is Role.GLOBAL_ADMINISTRATOR and not (
            self.allow_global_administrator and Role.GLOBAL_ADMINISTRATOR in self.allowed_roles
        ):
            return _refused(
                "allow_global_administrator",
                "Global Administrator is refused: Microsoft recommends the least privileged role that works.",
                f"request a less privileged role such as {self.default_role}; only if Global Administrator is "
                "really needed, the exomi operator sets allow_global_administrator to true and lists it in "
                f"allowed_roles {_WHERE}.",
                field="role",
            )
        if role not in self.allowed_roles:
            return _refused(
                "allowed_roles",
                f"role '{role}' is not allowed.",
                f"request one of: {', '.join(self.allowed_roles)}; or ask the exomi operator to add "
                f"'{role}' to allowed_roles {_WHERE}.",
                field="role",
            )
        if request.runtime not in self.allowed_runtimes:
            return _refused(
                "allowed_runtimes",
                f"runtime {request.runtime} is not allowed.",
                f"request one of: {', '.join(self.allowed_runtimes)}; or ask the exomi operator to add "
                f"'{request.runtime}' to allowed_runtimes {_WHERE}.",
                field="runtime",
            )
        pins = self.pinned_module_versions[request.runtime]
        modules = dict(pins)
        for name, version in (request.module_versions or {}).items():
            if version != pins[name] and not self.allow_unpinned_module_versions:
                return _refused(
                    "allow_unpinned_module_versions",
                    f"{name} {version} differs from the version pinned for runtime {request.runtime} "
                    f"({pins[name]}); new module releases often regress.",
                    "leave module_versions out to get the pinned versions, or ask the exomi operator to "
                    f"change pinned_module_versions or set allow_unpinned_module_versions {_WHERE}.",
                    field=f"module_versions.{name}",
                )
            modules[name] = version
        if request.callback_url is not None:
            host = (urlsplit(request.callback_url).hostname or "").lower()
            if not any(domain_matches(host, pattern) for pattern in self.callback_hosts):
                return _refused(
                    "callback_hosts",
                    f"callbacks to host '{host}' are not allowed.",
                    f"leave callback_url out, or ask the exomi operator to add '{host}' to callback_hosts {_WHERE}.",
                    field="callback_url",
                )
        uses_environment = (
            request.target_id.kind is TargetKind.AUTOMATION_ACCOUNT
            and request.runtime.uses_runtime_environment
        )
        return Decision(
            allowed=True,
            role=role,
            role_template_id=role.template_id,
            runtime=request.runtime,
            runtime_environment=(request.runtime_environment or default_runtime_environment(request.runtime))
            if uses_environment
            else None,
            module_versions=modules,
            runbook_name=request.runbook_name,
        )


def default_policy_document() -> dict[str, Any]:
    """The packaged safe default policy, as JSON data."""
    return json.loads(resources.files("shared").joinpath("default_policy.json").read_text("utf-8"))


def load_policy(text: str | None = None, path: str | Path | None = None) -> Policy:
    """The policy from JSON text (EXOMI_POLICY) or else a file (EXOMI_POLICY_FILE), over the default."""
    document = default_policy_document()
    if text is not None and text.strip():
        source = "EXOMI_POLICY"
        override = _parse_json(text, source)
    elif path is not None:
        source = "EXOMI_POLICY_FILE"
        try:
            content = Path(path).read_text("utf-8")
        except OSError as error:
            raise ConfigurationError(
                source, f"cannot read policy file {str(path)!r}: {error.strerror}"
            ) from None
        override = _parse_json(content, source)
    else:
        source = "default policy"
        override = {}
    if not isinstance(override, dict):
        raise ConfigurationError(source, "the policy must be a JSON object")
    document.update(override)
    try:
        return Policy.model_validate(document)
    except ValidationError as error:
        item = error.errors(include_url=False)[0]
        field = ".".join(str(part) for part in item["loc"]) or "policy"
        reason = str(item["ctx"]["error"]) if item["type"] == "value_error" else item["msg"]
        if item["type"] == "extra_forbidden":
            reason = f"is not a policy field; known fields are: {', '.join(Policy.model_fields)}"
        raise ConfigurationError(source, f"policy field {field}: {reason}") from None


def _parse_json(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigurationError(
            source, f"the policy is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
