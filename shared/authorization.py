"""Who may ask for what: the policy's caller rules, approvals and approvers, evaluated without any I/O.

``shared/policy.py`` decides *what* exomi may grant at all (organizations, scopes, roles, runtimes,
pins). This module decides whether *this requester* may ask for it through *this channel*:

* a request through a rule channel (tag, http, logicapps, ticket) is allowed only if some rule in
  ``policy.rules`` admits its requester for the operation, the target (and a user-assigned identity it
  names), the Entra role and the runtime; the refusal names the rule field ``rules`` and says why each
  rule did not admit it;
* a tag write that ARM allowed only through a tag-only role (Tag Contributor) is admitted only by a
  rule that names that role in ``target_roles``, whatever else the rule says;
* requests through operator channels (the exomi command, which runs with the operator's own Azure
  rights; reconciliation and expiry, which are exomi itself) are governed by ``allowed_channels``;
* an allowed provision may need an approver (``approval.*`` and the rule's ``require_approval``); the
  approver is named in ``approval.approvers`` and is never the requester.

The Azure roles a requester holds on a resource come in as ``HeldRoles`` (the service reads them from
ARM for the resources ``lookups_needed`` names), so every rule here is a fast, pure function.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.errors import PolicyRefusal
from shared.ids import ResourceId, parse_resource_id
from shared.models import (
    Channel,
    Operation,
    ProvisionRequest,
    Requester,
    RequesterKind,
    RevokeRequest,
    Role,
    Runtime,
)
from shared.policy import Policy
from shared.rules import RULE_CHANNELS, TAG_ONLY_ROLES, AccessRule, in_scopes, names_any

_WHERE = "in the exomi policy (app setting EXOMI_POLICY or the file named by EXOMI_POLICY_FILE)"
API_CHANNELS = (Channel.HTTP, Channel.LOGICAPPS, Channel.TICKET)
OPERATOR_KINDS = (RequesterKind.OPERATOR, RequesterKind.EXOMI)


@dataclass(frozen=True)
class HeldRoles:
    """The Azure role names a requester holds on resources (inherited assignments included), as read
    from ARM; a resource that was not looked up is unknown, which no target_roles rule accepts."""

    by_resource: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, roles: Mapping[ResourceId, set[str] | frozenset[str]]) -> HeldRoles:
        return cls(
            {rid.canonical.lower(): frozenset(r.lower() for r in names) for rid, names in roles.items()}
        )

    def on(self, resource: ResourceId) -> frozenset[str] | None:
        return self.by_resource.get(resource.canonical.lower())


NOTHING_HELD = HeldRoles()


@dataclass(frozen=True)
class Authorization:
    """The outcome: allowed (by ``rule``, perhaps needing approval for ``approval_reasons``) or refused."""

    allowed: bool
    rule: str | None = None  # the rule that admitted the request; "operator" for operator channels
    approval_reasons: tuple[str, ...] = ()  # why an approver must approve first; empty: no approval
    refusal: PolicyRefusal | None = None

    @property
    def needs_approval(self) -> bool:
        return bool(self.approval_reasons)


@dataclass(frozen=True)
class Ask:
    """What is being asked for, in the terms the rules speak."""

    operation: Operation
    channel: Channel
    target: ResourceId
    identity: ResourceId | None  # a user-assigned identity other than the target itself
    role: Role | None  # provision: the effective role; revoke: the role exomi granted, if known
    runtime: Runtime | None = None

    @classmethod
    def of(
        cls, request: ProvisionRequest | RevokeRequest, *, role: Role | None, runtime: Runtime | None = None
    ) -> Ask:
        target = request.target_id
        identity = request.identity_id if isinstance(request, ProvisionRequest) else _identity_of(request)
        if identity is not None and identity.canonical.lower() == target.canonical.lower():
            identity = None
        operation = Operation.REVOKE if isinstance(request, RevokeRequest) else Operation.PROVISION
        return cls(operation, request.channel, target, identity, role, runtime)


def _identity_of(request: RevokeRequest) -> ResourceId | None:
    return None if request.identity in (None, "system") else parse_resource_id(request.identity)


def _rules_for(policy: Policy, ask: Ask) -> list[AccessRule]:
    return [rule for rule in policy.rules if ask.channel in rule.channels]


def lookups_needed(policy: Policy, ask: Ask, requester: Requester) -> list[ResourceId]:
    """The resources on which the requester's Azure roles must be read from ARM for ``authorize``:
    none unless a rule that could admit it names target_roles. A tag write's role on the target is in
    the event itself; HTTP callers need App Service Authentication (an object id) to be looked up."""
    if requester.kind in OPERATOR_KINDS or requester.principal_id is None:
        return []
    relevant = [
        rule
        for rule in _rules_for(policy, ask)
        if rule.target_roles
        and ask.operation in rule.operations
        and (not rule.principals or names_any(rule.principals, requester))
    ]
    if not relevant:
        return []
    needed = [] if ask.channel is Channel.TAG else [ask.target]
    if ask.identity is not None:
        needed.append(ask.identity)
    return needed


def authorize(
    policy: Policy, ask: Ask, requester: Requester, held: HeldRoles = NOTHING_HELD
) -> Authorization:
    """May ``requester`` ask for ``ask``? Never raises; a refusal carries the PolicyRefusal to raise."""
    if ask.channel not in RULE_CHANNELS:  # the exomi command, reconciliation, expiry
        if requester.kind not in OPERATOR_KINDS:
            return _refuse(ask, requester, [f"channel '{ask.channel}' is for operators and exomi itself"])
        approval = _approval_reasons(policy, ask, []) if requester.kind is RequesterKind.OPERATOR else ()
        return Authorization(True, rule="operator", approval_reasons=approval)
    if requester.kind in OPERATOR_KINDS:
        return _refuse(
            ask, requester, [f"{requester.kind.value} requests do not come through '{ask.channel}'"]
        )
    rules = _rules_for(policy, ask)
    if not rules:
        return _refuse(ask, requester, [f"no rule admits requests through channel '{ask.channel}'"])
    admitting: list[AccessRule] = []
    misses: list[str] = []
    for rule in rules:
        why = _mismatch(rule, ask, requester, held)
        if why is None:
            admitting.append(rule)
        else:
            misses.append(f"rule '{rule.name}' {why}")
    if not admitting:
        return _refuse(ask, requester, misses)
    # The first rule that needs no approval wins; otherwise the first that admits.
    chosen = next((rule for rule in admitting if not rule.require_approval), admitting[0])
    return Authorization(True, rule=chosen.name, approval_reasons=_approval_reasons(policy, ask, admitting))


def _mismatch(rule: AccessRule, ask: Ask, requester: Requester, held: HeldRoles) -> str | None:
    """Why ``rule`` does not admit the request, or None when it does."""
    if ask.operation not in rule.operations:
        return f"does not allow {ask.operation.value}"
    if rule.principals and not names_any(rule.principals, requester):
        return f"does not name {_who(requester)}"
    if ask.channel is Channel.TAG:
        writer_role = (requester.azure_role or "").lower()
        named = {name.lower() for name in rule.target_roles}
        if writer_role in TAG_ONLY_ROLES and writer_role not in named:
            return (
                f"does not accept a write allowed only by the role '{requester.azure_role}', which grants no "
                "access to the resource itself (a rule must name it in target_roles)"
            )
        if rule.target_roles and writer_role not in named:
            shown = f"the role '{requester.azure_role}'" if requester.azure_role else "no role (no evidence)"
            return (
                f"needs the write allowed by one of {', '.join(rule.target_roles)}; ARM allowed it by {shown}"
            )
    elif rule.target_roles:
        why = _holds(rule, held, ask.target, "target", requester)
        if why is not None:
            return why
    if rule.target_roles and ask.identity is not None:
        why = _holds(rule, held, ask.identity, "user-assigned identity", requester)
        if why is not None:
            return why
    if rule.scopes:
        if not in_scopes(ask.target, rule.scopes):
            return "does not cover the target's scope"
        if ask.identity is not None and not in_scopes(ask.identity, rule.scopes):
            return "does not cover the user-assigned identity's scope"
    if ask.role is not None and rule.roles and ask.role not in rule.roles:
        return f"does not allow the role '{ask.role}'"
    if ask.runtime is not None and rule.runtimes and ask.runtime not in rule.runtimes:
        return f"does not allow runtime {ask.runtime}"
    return None


def _holds(
    rule: AccessRule, held: HeldRoles, resource: ResourceId, what: str, requester: Requester
) -> str | None:
    roles = held.on(resource)
    if roles is None:
        if requester.principal_id is None:
            return (
                f"needs one of {', '.join(rule.target_roles)} on the {what}, and the caller has no object id "
                "to look them up (App Service Authentication identifies callers)"
            )
        return f"needs one of {', '.join(rule.target_roles)} on the {what}, which could not be read"
    if not roles & {name.lower() for name in rule.target_roles}:
        return (
            f"needs one of {', '.join(rule.target_roles)} on the {what}; {_who(requester)} holds none of them"
        )
    return None


def _approval_reasons(policy: Policy, ask: Ask, admitting: list[AccessRule]) -> tuple[str, ...]:
    """Why a provision must wait for an approver (revocations never wait)."""
    if ask.operation is not Operation.PROVISION:
        return ()
    approval = policy.approval
    reasons: list[str] = []
    if admitting and all(rule.require_approval for rule in admitting):
        reasons.append(f"rule '{admitting[0].name}' requires approval")
    if ask.role is not None and ask.role in approval.required_for_roles:
        reasons.append(f"role '{ask.role}' requires approval")
    if approval.required_for_scopes and (
        in_scopes(ask.target, approval.required_for_scopes)
        or (ask.identity is not None and in_scopes(ask.identity, approval.required_for_scopes))
    ):
        reasons.append("the target's scope requires approval")
    if ask.channel in approval.required_for_channels:
        reasons.append(f"requests through channel '{ask.channel}' require approval")
    return tuple(reasons)


def _who(requester: Requester) -> str:
    if (
        requester.principal_id
        and requester.principal_name
        and requester.principal_name != requester.principal_id
    ):
        return f"{requester.principal_name} ({requester.principal_id})"
    return requester.principal_name or requester.principal_id or requester.name


def _refuse(ask: Ask, requester: Requester, misses: list[str]) -> Authorization:
    role = f" with role '{ask.role}'" if ask.role is not None and ask.operation is Operation.PROVISION else ""
    reason = (
        f"{_who(requester)} may not {ask.operation.value} {ask.target.canonical}{role} through channel "
        f"'{ask.channel}': {'; '.join(misses)}."
    )
    fix = (
        "ask someone a rule admits, or ask the exomi operator to add or extend a rule in rules "
        f"{_WHERE}; for tags and target_roles, the Azure role you hold on the target counts."
    )
    return Authorization(False, refusal=PolicyRefusal("rules", reason, fix))


# --------------------------------------------------------------------------------------- other checks


def check_api_access(policy: Policy, requester: Requester) -> PolicyRefusal | None:
    """May this caller use the HTTP API at all (reads included)? Only if some rule of an API channel
    could admit it, or it is an approver; what it may ask for is decided per request."""
    for rule in policy.rules:
        if not set(rule.channels) & set(API_CHANNELS):
            continue
        if names_any(rule.principals, requester) or (not rule.principals and requester.principal_id):
            return None
    if names_any(policy.approval.approvers, requester):
        return None
    return PolicyRefusal(
        "rules",
        f"no rule admits {_who(requester)} to the HTTP API.",
        f"ask the exomi operator to name you (your object id, or a pattern matching your name) in a rule's "
        f"principals {_WHERE}; callers are identified by App Service Authentication "
        "(EXOMI_TRUST_APP_SERVICE_AUTH=true), otherwise every caller is the 'function-key caller'.",
    )


def check_approver(policy: Policy, approver: Requester, requester: Requester | None) -> PolicyRefusal | None:
    """May ``approver`` decide on a request ``requester`` made? An approver named in the policy, never
    the requester."""
    if not names_any(policy.approval.approvers, approver):
        return PolicyRefusal(
            "approval.approvers",
            f"{_who(approver)} is not an approver.",
            f"ask one of the approvers the exomi operator named in approval.approvers {_WHERE}.",
        )
    if requester is not None and approver.same_principal(requester):
        return PolicyRefusal(
            "approval.approvers",
            f"{_who(approver)} asked for this request and cannot approve or deny it.",
            "ask another approver.",
        )
    return None


def is_approver(policy: Policy, requester: Requester) -> bool:
    return names_any(policy.approval.approvers, requester)
