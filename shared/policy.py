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
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    StrictBool,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from shared.compatibility import load_matrix
from shared.constants import RUNTIME_ENVIRONMENT_NAME_FORMAT
from shared.errors import ConfigurationError, InputError, PolicyRefusal
from shared.function_apps import HOST as FUNCTIONS_HOST
from shared.ids import TargetKind, domain_matches, validate_domain_pattern, validate_host_pattern
from shared.models import (
    Channel,
    ModuleName,
    ProvisionRequest,
    RevokeRequest,
    Role,
    Runtime,
    Version,
    expiry_moment,
)
from shared.rules import (
    AccessRule,
    ApprovalPolicy,
    ExpiryPolicy,
    ScopeEntry,
    checked,
    parse_duration,
)

_WHERE = "in the exomi policy (app setting EXOMI_POLICY or the file named by EXOMI_POLICY_FILE)"


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
    # When exomi takes the access away again: a date the request named, or, for a duration, the moment it
    # ends once the request has succeeded (None: until revoked, or not in place yet).
    expires_at: datetime | None = None

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


def powershell_host(request: ProvisionRequest) -> str | None:
    """Which PowerShell runs the target's modules (a compatibility matrix host), None where none does:
    an Automation account's runtime, Windows PowerShell 5.1 for Run Command on a VM or a scale set's instances.
    The policy runs before exomi reads the VM, so a Linux VM's (or set's) pwsh (host linux-7.4) is checked by the
    identity step."""
    if request.target_id.kind is TargetKind.AUTOMATION_ACCOUNT:
        return request.runtime.value
    if request.target_id.kind in (TargetKind.VIRTUAL_MACHINE, TargetKind.SCALE_SET):
        return Runtime.PS51.value
    if request.target_id.kind is TargetKind.FUNCTION_APP:
        return FUNCTIONS_HOST
    return None


def _allowed(
    request: ProvisionRequest, role: Role, modules: dict[ModuleName, str], expires_at: datetime | None
) -> Decision:
    """The effective values of a request: the role, runtime, module versions and runbook it gets."""
    uses_environment = (
        request.target_id.kind is TargetKind.AUTOMATION_ACCOUNT and request.runtime.uses_runtime_environment
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
        expires_at=expires_at,
    )


def _by_name(modules: dict[ModuleName, str]) -> dict[str, str]:
    return {name.value: version for name, version in modules.items()}


def _incompatible(request: ProvisionRequest, modules: dict[ModuleName, str]) -> Decision | None:
    """The refusal of module versions that are known not to work where the target runs them."""
    host = powershell_host(request)
    problems = load_matrix().problems(host, _by_name(modules)) if host is not None else []
    if not problems:
        return None
    problem = problems[0]
    asked = problem.module in (request.module_versions or {})
    return _refused(
        "compatibility",
        f"{problem.message} (source: {problem.source}).",
        f"ask for a version that works: {problem.works}"
        + (
            "."
            if asked
            else f"; the policy pins it, so ask the exomi operator to change pinned_module_versions {_WHERE}."
        ),
        field=f"module_versions.{problem.module}",
    )


def _unsupported_host(request: ProvisionRequest) -> Decision | None:
    """Where Azure itself cannot do what the request asks: a hybrid worker with a user-assigned identity."""
    if request.hybrid_worker_group is None or request.identity_id is None:
        return None
    return _refused(
        "hosts",
        "a Hybrid Runbook Worker cannot use the Automation account's user-assigned managed identity: "
        '"user-assigned identities are supported for cloud jobs only" (Microsoft Learn, Azure Automation, '
        '"Migrate from Run As accounts to managed identities" and "Run runbooks on a Hybrid Runbook Worker").',
        "ask for the account's system-assigned identity (identity 'system') on the hybrid worker group, run the "
        "runbooks in Azure instead (leave hybrid_worker_group out), or give the worker machine itself access "
        "(provision the Azure VM as a target: its script then connects with the machine's own identity).",
        field="hybrid_worker_group",
    )


def expires_at_of(expires: str, start: datetime) -> datetime:
    """The moment a request's ``expires`` (a duration from ``start``, or a date or time) names."""
    if expires[:1] == "P":
        return start + parse_duration(expires)
    return expiry_moment(expires)


def default_runtime_environment(runtime: Runtime) -> str:
    major, minor = runtime.value.split(".")
    return RUNTIME_ENVIRONMENT_NAME_FORMAT.format(major=major, minor=minor)


OrganizationPattern = Annotated[
    StrictStr, AfterValidator(checked(validate_domain_pattern, "allowed_organizations"))
]
HTTPS_PORT = 443


def split_port(entry: str) -> tuple[str, int]:
    """A callback_hosts entry as (host pattern, port): 'host' means port 443, 'host:8443' names a port
    ('[::1]:8443' for an IPv6 literal)."""
    if entry.startswith("[") and "]" in entry:
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else HTTPS_PORT
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        if port.isdigit():
            return host, int(port)
    return entry, HTTPS_PORT


def _check_callback_host(value: str, field: str) -> str:
    host, port = split_port(value)
    if not 1 <= port <= 65535:
        raise InputError(field, f"port {port} is not a TCP port")
    pattern = validate_host_pattern(host, field)
    if port == HTTPS_PORT:
        return pattern
    return f"[{pattern}]:{port}" if ":" in pattern else f"{pattern}:{port}"


HostPattern = Annotated[StrictStr, AfterValidator(checked(_check_callback_host, "callback_hosts"))]


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
    on_failure: Literal["rollback", "keep"]  # what a failed or cancelled request does with what it granted
    remove_unmanaged_grants: StrictBool  # remove extra grants exomi did not make (else only report them)
    rules: list[AccessRule]  # who may ask for what (shared/authorization.py); empty: nobody, except operators
    approval: ApprovalPolicy
    expiry: ExpiryPolicy

    @field_validator("rules")
    @classmethod
    def _check_rule_names(cls, rules: list[AccessRule]) -> list[AccessRule]:
        names = [rule.name.lower() for rule in rules]
        duplicate = next((name for name in names if names.count(name) > 1), None)
        if duplicate is not None:
            raise ValueError(f"two rules are named '{duplicate}'; every rule needs its own name")
        return rules

    @model_validator(mode="after")
    def _approvals_have_approvers(self) -> Policy:
        needed = self.approval.required_anywhere or any(rule.require_approval for rule in self.rules)
        if needed and not self.approval.approvers:
            raise ValueError(
                "approval.approvers: is empty, but approval is required (approval.required_for_* or a rule's "
                "require_approval); name who may approve"
            )
        return self

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
        matrix = load_matrix()
        for runtime, modules in pins.items():
            problems = matrix.problems(runtime.value, _by_name(modules))
            if problems:
                problem = problems[0]
                raise ValueError(
                    f"{runtime}.{problem.module}: {problem.message}. Pin a version that works: {problem.works} "
                    f"(source: {problem.source}, docs/COMPATIBILITY.md)"
                )
        return pins

    def evaluate(self, request: ProvisionRequest | RevokeRequest, now: datetime | None = None) -> Decision:
        """Check a validated request against the policy; never raises for a refusal (see Decision).
        ``now`` is when an access duration starts (default: now)."""
        if isinstance(request, RevokeRequest) and request.channel is Channel.EXPIRY:
            return Decision(allowed=True)  # access that ran out always goes, whatever else changed
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
        return self._evaluate_provision(request, now or datetime.now(UTC))

    def _evaluate_provision(self, request: ProvisionRequest, now: datetime) -> Decision:
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
        pins = self.pins_for(request)
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
        refusal = _incompatible(request, modules) or _unsupported_host(request)
        if refusal is not None:
            return refusal
        if request.callback_url is not None:
            parts = urlsplit(request.callback_url)
            host, port = (parts.hostname or "").lower(), parts.port or HTTPS_PORT
            allowed = any(
                domain_matches(host, pattern) and port == pattern_port
                for pattern, pattern_port in map(split_port, self.callback_hosts)
            )
            if not allowed:
                where = host if port == HTTPS_PORT else f"{host}:{port}"
                return _refused(
                    "callback_hosts",
                    f"callbacks to '{where}' are not allowed (a host listed without a port allows port "
                    f"{HTTPS_PORT} only).",
                    f"leave callback_url out, or ask the exomi operator to add '{where}' to callback_hosts {_WHERE}.",
                    field="callback_url",
                )
        expires_at, refusal = self._expiry(request, role, now)
        if refusal is not None:
            return refusal
        return _allowed(request, role, modules, expires_at)

    def pins_for(self, request: ProvisionRequest) -> dict[ModuleName, str]:
        """The module versions a request gets unless it names others: the policy's pins per Automation
        runtime; for a Function app (no runtime of exomi's choosing: the PowerShell 7.4 worker) the
        compatibility matrix's functions-7.4 defaults."""
        if request.target_id.kind is TargetKind.FUNCTION_APP:
            return {ModuleName(name): v for name, v in load_matrix().defaults(FUNCTIONS_HOST).items()}
        return dict(self.pinned_module_versions[request.runtime])

    def desired_values(self, request: ProvisionRequest) -> Decision:
        """The values a request asks for with the policy's defaults filled in, whether or not the policy
        allows them: what diagnose compares the tenant with when the policy refuses the request."""
        pins = (
            self.pins_for(request)
            if request.target_id.kind is TargetKind.FUNCTION_APP
            else self.pinned_module_versions.get(request.runtime, {})
        )
        modules = {**pins, **(request.module_versions or {})}
        return _allowed(request, request.role or self.default_role, modules, None)

    def _expiry(
        self, request: ProvisionRequest, role: Role, now: datetime
    ) -> tuple[datetime | None, Decision | None]:
        """When the access ends (None: until revoked), or the refusal of expiry.* that forbids it."""
        limit = self.expiry.limit_for(role)
        if request.expires is None:
            if role in self.expiry.required_for_roles:
                return None, _refused(
                    "expiry.required_for_roles",
                    f"access with role '{role}' must end: the request names no duration.",
                    f"ask for a duration with expires (an ISO 8601 duration such as P7D{f', at most {limit}' if limit else ''}).",
                    field="expires",
                )
            if limit is not None:
                return None, _refused(
                    "expiry.max_duration",
                    f"access with role '{role}' may last at most {limit}: the request names no duration.",
                    f"ask for a duration of at most {limit} with expires.",
                    field="expires",
                )
            return None, None
        # A duration starts when the access is in place (the engine sets expires_at then); a date is fixed.
        is_duration = request.expires[:1] == "P"
        ends = expires_at_of(request.expires, now)
        if limit is not None and ends > now + parse_duration(limit) + timedelta(seconds=1):
            return None, _refused(
                "expiry.max_duration",
                f"access with role '{role}' may last at most {limit}; {request.expires} ends at "
                f"{ends.isoformat(timespec='seconds')}.",
                f"ask for at most {limit}, or ask the exomi operator to change expiry.max_duration {_WHERE}.",
                field="expires",
            )
        expires_at = None if is_duration else ends
        return expires_at, None


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
    if "allowed_callers" in override:
        raise ConfigurationError(
            source,
            "policy field allowed_callers: was replaced by rules, which say who may ask for what through "
            "which channel (docs/POLICY.md, 'Who may ask'); move each entry into a rule's principals",
        )
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
