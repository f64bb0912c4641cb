"""Who may ask for what: the caller rules, the Tag Contributor path, target roles, approvals and
approvers, evaluated without any I/O (shared/authorization.py)."""

from __future__ import annotations

import json

import pytest

from shared.authorization import (
    Ask,
    HeldRoles,
    authorize,
    check_api_access,
    check_approver,
    lookups_needed,
)
from shared.ids import parse_resource_id
from shared.models import (
    FUNCTION_KEY_CALLER,
    ProvisionRequest,
    Requester,
    RequesterKind,
    RevokeRequest,
    Role,
)
from shared.policy import load_policy
from shared.rules import principal_matches

SUB = "6a2b5c1e-0d3f-4e8a-9b7c-1d2e3f4a5b6c"
APP_RG = f"/subscriptions/{SUB}/resourceGroups/rg-app1-prod"
PLATFORM_RG = f"/subscriptions/{SUB}/resourceGroups/rg-platform"
APP_AA = f"{APP_RG}/providers/Microsoft.Automation/automationAccounts/aa-app1"
PLATFORM_AA = f"{PLATFORM_RG}/providers/Microsoft.Automation/automationAccounts/aa-platform"
SHARED_UAI = f"{PLATFORM_RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uai-shared"
PLATFORM_ADMIN = "11111111-1111-4111-8111-111111111111"
APP_DEV = "22222222-2222-4222-8222-222222222222"
LOGIC_APP = "33333333-3333-4333-8333-333333333333"
SECOPS = "44444444-4444-4444-8444-444444444444"

# The example policy of docs/POLICY.md: a platform team, an app team inside its resource groups, and a
# service desk through Logic Apps; approval for Exchange Administrator and for app-team tag writes.
EXAMPLE = {
    "allowed_organizations": ["contoso.onmicrosoft.com"],
    "allowed_scopes": [f"/subscriptions/{SUB}"],
    "allowed_roles": ["Exchange Recipient Administrator", "Exchange Administrator", "Global Reader"],
    "rules": [
        {
            "name": "platform-team",
            "channels": ["tag", "http"],
            "principals": [PLATFORM_ADMIN, "*@platform.contoso.com"],
        },
        {
            "name": "app-team-tags",
            "channels": ["tag"],
            "target_roles": ["Owner", "Contributor"],
            "scopes": [f"/subscriptions/{SUB}/resourceGroups/rg-app*"],
            "roles": ["Exchange Recipient Administrator", "Global Reader"],
            "require_approval": True,
        },
        {
            "name": "app-team-http",
            "channels": ["http"],
            "principals": ["*@contoso.com"],
            "target_roles": ["Owner", "Contributor"],
            "scopes": [f"/subscriptions/{SUB}/resourceGroups/rg-app*"],
            "roles": ["Exchange Recipient Administrator", "Global Reader"],
        },
        {
            "name": "service-desk",
            "channels": ["logicapps", "ticket"],
            "principals": [LOGIC_APP],
            "operations": ["provision"],
            "roles": ["Exchange Recipient Administrator"],
        },
    ],
    "approval": {
        "approvers": [SECOPS, "secops-*@contoso.com"],
        "required_for_roles": ["Exchange Administrator"],
        "timeout": "P1D",
    },
}
POLICY = load_policy(json.dumps(EXAMPLE))


def writer(object_id: str, role: str | None, name: str = "someone@contoso.com") -> Requester:
    return Requester(
        kind=RequesterKind.ARM, name=name, principal_id=object_id, principal_name=name, azure_role=role
    )


def caller(object_id: str | None, name: str) -> Requester:
    return Requester(
        kind=RequesterKind.APP_SERVICE_AUTH, name=name, principal_id=object_id, principal_name=name
    )


FUNCTION_KEY = Requester(kind=RequesterKind.FUNCTION_KEY, name=FUNCTION_KEY_CALLER)


def ask(
    target: str = APP_AA, channel: str = "tag", role: str = "Exchange Recipient Administrator", **extra
) -> Ask:
    body = {
        "target": target,
        "organization": "contoso.onmicrosoft.com",
        "requested_by": "x",
        "channel": channel,
    }
    request = ProvisionRequest.parse({**body, "role": role, **extra})
    decision = POLICY.evaluate(request)
    assert decision.allowed, decision.reason
    return Ask.of(request, role=decision.role, runtime=decision.runtime)


def revoke(target: str = APP_AA, channel: str = "http", role: Role | None = None) -> Ask:
    request = RevokeRequest.parse({"target": target, "requested_by": "x", "channel": channel})
    return Ask.of(request, role=role)


def held(resource: str, *roles: str) -> HeldRoles:
    return HeldRoles.of({parse_resource_id(resource): set(roles)})


def refused(result) -> str:
    assert not result.allowed and result.refusal is not None
    assert result.refusal.rule == "rules" and result.refusal.fix
    return result.refusal.reason


# --- tags ---------------------------------------------------------------------------------------------


def test_a_tag_contributor_is_refused_whoever_it_is():
    reason = refused(authorize(POLICY, ask(), writer(APP_DEV, "Tag Contributor")))
    assert "Tag Contributor" in reason and "app-team-tags" in reason
    # Even a named platform admin: a write that only Tag Contributor allowed is never enough...
    assert not authorize(POLICY, ask(PLATFORM_AA), writer(PLATFORM_ADMIN, "Tag Contributor")).allowed
    # ...unless a rule names that role explicitly.
    naming = load_policy(
        json.dumps(
            {
                **EXAMPLE,
                "rules": [{"name": "taggers", "channels": ["tag"], "target_roles": ["Tag Contributor"]}],
            }
        )
    )
    assert authorize(naming, ask(), writer(APP_DEV, "Tag Contributor")).allowed


def test_an_automation_contributor_tagging_through_the_account_is_refused():
    reason = refused(authorize(POLICY, ask(), writer(APP_DEV, "Automation Contributor")))
    assert "Automation Contributor" in reason


def test_an_owner_of_an_app_resource_group_may_tag_but_needs_approval():
    result = authorize(POLICY, ask(), writer(APP_DEV, "Owner"))
    assert result.allowed and result.rule == "app-team-tags"
    assert result.approval_reasons == ("rule 'app-team-tags' requires approval",)


def test_the_app_team_rule_stops_at_its_scopes_and_roles():
    assert "scope" in refused(authorize(POLICY, ask(PLATFORM_AA), writer(APP_DEV, "Owner")))
    assert "role 'Exchange Administrator'" in refused(
        authorize(POLICY, ask(role="Exchange Administrator"), writer(APP_DEV, "Contributor"))
    )


def test_the_platform_team_tags_without_rule_approval_but_exchange_administrator_needs_one():
    result = authorize(POLICY, ask(PLATFORM_AA), writer(PLATFORM_ADMIN, "Owner"))
    assert result.allowed and result.rule == "platform-team" and not result.needs_approval
    admin = authorize(
        POLICY, ask(PLATFORM_AA, role="Exchange Administrator"), writer(PLATFORM_ADMIN, "Owner")
    )
    assert admin.allowed and admin.approval_reasons == ("role 'Exchange Administrator' requires approval",)


def test_a_shared_identity_named_by_a_tag_needs_a_role_on_the_identity_too():
    wanted = ask(identity=SHARED_UAI)
    owner = writer(APP_DEV, "Owner")
    assert lookups_needed(POLICY, wanted, owner) == [parse_resource_id(SHARED_UAI)]
    assert "user-assigned identity" in refused(authorize(POLICY, wanted, owner))  # nothing looked up
    assert "identity's scope" in refused(authorize(POLICY, wanted, owner, held(SHARED_UAI, "owner")))


def test_tagging_a_shared_identity_itself_is_refused_for_a_writer_no_rule_admits():
    reason = refused(authorize(POLICY, ask(SHARED_UAI), writer(APP_DEV, "Managed Identity Contributor")))
    assert "platform-team" in reason


# --- HTTP ---------------------------------------------------------------------------------------------


def test_an_http_caller_must_hold_a_listed_role_on_the_target():
    dev = caller(APP_DEV, "dev@contoso.com")
    wanted = ask(channel="http")
    assert lookups_needed(POLICY, wanted, dev) == [parse_resource_id(APP_AA)]
    assert "holds none" in refused(authorize(POLICY, wanted, dev, held(APP_AA, "reader")))
    assert authorize(POLICY, wanted, dev, held(APP_AA, "contributor")).rule == "app-team-http"


def test_an_unidentified_caller_matches_only_a_rule_that_names_the_function_key_caller():
    assert not principal_matches("*", FUNCTION_KEY)
    assert principal_matches("function-key caller", FUNCTION_KEY)
    assert "does not name" in refused(authorize(POLICY, ask(channel="http"), FUNCTION_KEY))
    assert check_api_access(POLICY, FUNCTION_KEY) is not None


def test_revocations_follow_the_same_rules():
    dev = caller(APP_DEV, "dev@contoso.com")
    assert not authorize(POLICY, revoke(PLATFORM_AA), dev, held(PLATFORM_AA, "reader")).allowed
    assert authorize(POLICY, revoke(), dev, held(APP_AA, "owner")).allowed
    # A caller revokes only a role it could have asked for.
    assert not authorize(POLICY, revoke(role=Role.EXCHANGE_ADMINISTRATOR), dev, held(APP_AA, "owner")).allowed
    # The service desk may provision, not revoke.
    desk = caller(LOGIC_APP, "logic-exo")
    assert "does not allow revoke" in refused(authorize(POLICY, revoke(channel="logicapps"), desk))
    assert authorize(POLICY, ask(channel="logicapps"), desk).allowed


def test_object_ids_match_exactly_and_names_as_patterns():
    alice = caller(APP_DEV, "Alice@Contoso.COM")
    assert principal_matches(APP_DEV.upper(), alice) and principal_matches(APP_DEV.replace("-", ""), alice)
    assert principal_matches("*@contoso.com", alice)
    assert not principal_matches("*@contoso.com", caller(None, "alice@contoso.com.evil.example"))
    assert not principal_matches("2222*", caller(APP_DEV, "nobody"))  # an id never matches as a pattern


# --- operators, approvers, API access -------------------------------------------------------------------


def test_operator_channels_are_not_governed_by_the_rules_but_approvals_still_apply():
    operator = Requester.operator("alice@workstation")
    result = authorize(POLICY, ask(channel="cli", role="Exchange Administrator"), operator)
    assert result.allowed and result.rule == "operator" and result.needs_approval
    assert not authorize(POLICY, ask(channel="cli"), writer(APP_DEV, "Owner")).allowed  # not an operator
    assert not authorize(POLICY, ask(channel="http"), operator).allowed  # operators cannot borrow a channel


def test_approvers_are_named_in_the_policy_and_never_the_requester():
    secops = caller(SECOPS, "secops-1@contoso.com")
    assert check_approver(POLICY, secops, writer(APP_DEV, "Owner")) is None
    own = check_approver(POLICY, secops, writer(SECOPS, "Owner"))
    assert own is not None and own.rule == "approval.approvers"
    stranger = check_approver(POLICY, caller(APP_DEV, "dev@contoso.com"), None)
    assert stranger is not None and "not an approver" in stranger.reason
    assert check_approver(POLICY, FUNCTION_KEY, None) is not None


@pytest.mark.parametrize(
    ("requester", "admitted"),
    [
        (caller(APP_DEV, "dev@contoso.com"), True),  # app-team-http names *@contoso.com
        (caller(LOGIC_APP, "logic-exo"), True),  # service-desk
        (caller(SECOPS, "secops-1@elsewhere.example"), True),  # an approver
        (caller("55555555-5555-4555-8555-555555555555", "mallory@evil.example"), False),
    ],
)
def test_the_api_admits_callers_some_rule_or_the_approvers_name(requester, admitted):
    assert (check_api_access(POLICY, requester) is None) is admitted


def test_the_documented_example_does_what_the_docs_say():
    from tests.unit.test_policy import documented_example

    example = load_policy(documented_example())
    sub = example.allowed_scopes[0].subscription_id
    payroll_aa = f"/subscriptions/{sub}/resourceGroups/rg-app-payroll/providers/Microsoft.Automation/automationAccounts/aa-payroll"
    platform_vm = (
        f"/subscriptions/{sub}/resourceGroups/rg-platform/providers/Microsoft.Compute/virtualMachines/vm1"
    )

    def wanted(
        target: str, channel: str, role: str = "Exchange Recipient Administrator", **extra: str
    ) -> Ask:
        body = {
            "target": target,
            "organization": "contoso.onmicrosoft.com",
            "requested_by": "x",
            "channel": channel,
        }
        request = ProvisionRequest.parse({**body, "role": role, **extra})
        decision = example.evaluate(request)
        assert decision.allowed, decision.reason
        return Ask.of(request, role=decision.role)

    member = writer(APP_DEV, "Contributor")
    assert not authorize(example, wanted(payroll_aa, "tag"), writer(APP_DEV, "Tag Contributor")).allowed
    assert not authorize(
        example, wanted(payroll_aa, "tag"), writer(APP_DEV, "Automation Contributor")
    ).allowed
    assert authorize(example, wanted(payroll_aa, "tag"), member).needs_approval
    dev = caller(APP_DEV, "dev@contoso.com")
    assert not authorize(example, wanted(platform_vm, "http"), dev, held(platform_vm, "owner")).allowed
    desk = caller(example.rules[3].principals[0], "logic-exo")
    assert authorize(example, wanted(payroll_aa, "logicapps"), desk).allowed
    admin = caller(example.rules[0].principals[0], "admin")
    five_days = authorize(
        example, wanted(platform_vm, "http", "Exchange Administrator", expires="P5D"), admin
    )
    assert five_days.allowed and five_days.approval_reasons == (
        "role 'Exchange Administrator' requires approval",
    )
