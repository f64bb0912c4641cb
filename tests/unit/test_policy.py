"""Policy: the default is safe, refusals name their rule and the fix, loading fails loudly."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.errors import ConfigurationError, InputError, PolicyRefusal
from shared.models import ModuleName, ProvisionRequest, RevokeRequest, Role, Runtime
from shared.policy import default_policy_document, load_policy

ROOT = Path(__file__).resolve().parents[2]
SUB = "6a2b5c1e-0d3f-4e8a-9b7c-1d2e3f4a5b6c"
OTHER_SUB = "0f1e2d3c-4b5a-4968-8776-655443322110"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-exo-prod"
AA = f"{RG}/providers/Microsoft.Automation/automationAccounts/aa-exo-01"
VM = f"{RG}/providers/Microsoft.Compute/virtualMachines/vm-01"
FUNC = f"{RG}/providers/Microsoft.Web/sites/func-exo-01"
UAI_ELSEWHERE = f"/subscriptions/{OTHER_SUB}/resourceGroups/rg-ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uai-01"
BASE = {"target": AA, "organization": "contoso.onmicrosoft.com", "requested_by": "alice", "channel": "http"}
OPEN = {"allowed_organizations": ["*.onmicrosoft.com"], "allowed_scopes": [f"/subscriptions/{SUB}"]}


def policy(**fields):
    return load_policy(json.dumps({**OPEN, **fields}))


def request(**changes):
    return ProvisionRequest.parse({**BASE, **changes})


def refused_rule(decision) -> str:
    assert not decision.allowed
    refusal = decision.refusal()
    assert isinstance(refusal, PolicyRefusal)
    assert refusal.rule == decision.rule
    assert refusal.fix and refusal.rule in refusal.message
    with pytest.raises(PolicyRefusal):
        decision.raise_if_refused()
    return decision.rule


# --- the default policy ------------------------------------------------------------------------------


def test_the_default_policy_is_safe():
    default = load_policy()
    assert default.allow_global_administrator is False
    assert Role.GLOBAL_ADMINISTRATOR not in default.allowed_roles
    assert default.default_role is Role.EXCHANGE_RECIPIENT_ADMINISTRATOR
    assert set(default.allowed_roles) == {
        Role.EXCHANGE_RECIPIENT_ADMINISTRATOR,
        Role.GLOBAL_READER,
        Role.SECURITY_READER,
    }
    assert default.allow_unpinned_module_versions is False
    assert (
        default.allowed_organizations == [] and default.allowed_scopes == [] and default.callback_hosts == []
    )
    for runtime in Runtime:
        assert default.pinned_module_versions[runtime] == {
            # 3.5.0 and later need PowerShell 7.4 (shared/compatibility.json)
            ModuleName.EXCHANGE_ONLINE_MANAGEMENT: "3.4.0" if runtime is Runtime.PS72 else "3.5.1",
            ModuleName.PACKAGE_MANAGEMENT: "1.4.8.1",
            ModuleName.POWERSHELL_GET: "2.2.5",
        }


def test_the_default_policy_refuses_until_the_operator_allows_organizations_and_scopes():
    default = load_policy()
    assert refused_rule(default.evaluate(request())) == "allowed_organizations"
    scoped_only = load_policy(json.dumps({"allowed_organizations": ["contoso.onmicrosoft.com"]}))
    assert refused_rule(scoped_only.evaluate(request())) == "allowed_scopes"


def test_the_documented_default_is_the_packaged_default():
    text = (ROOT / "docs" / "POLICY.md").read_text("utf-8")
    block = re.search(r"<!-- default-policy -->\s*```json\n(.*?)```", text, re.S)
    assert block, "docs/POLICY.md must show the default policy in a json block after <!-- default-policy -->"
    assert json.loads(block.group(1)) == default_policy_document()


# --- refusals ----------------------------------------------------------------------------------------


def test_global_administrator_is_refused_by_default_whatever_the_spelling():
    assert (
        refused_rule(policy().evaluate(request(role="global administrator"))) == "allow_global_administrator"
    )


def test_global_administrator_needs_both_the_switch_and_the_listing():
    listed_only = policy(allowed_roles=["Global Administrator", "Exchange Recipient Administrator"])
    switch_only = policy(allow_global_administrator=True)
    both = policy(
        allow_global_administrator=True,
        allowed_roles=["Global Administrator", "Exchange Recipient Administrator"],
    )
    ga = request(role="Global Administrator")
    assert refused_rule(listed_only.evaluate(ga)) == "allow_global_administrator"
    assert refused_rule(switch_only.evaluate(ga)) == "allow_global_administrator"
    assert both.evaluate(ga).role is Role.GLOBAL_ADMINISTRATOR


def test_an_unlisted_role_is_refused_and_the_fix_lists_the_allowed_ones():
    decision = policy().evaluate(request(role="Exchange Administrator"))
    assert refused_rule(decision) == "allowed_roles"
    assert "Exchange Recipient Administrator" in decision.fix


@pytest.mark.parametrize(
    "organization", ["contoso.com", "onmicrosoft.com", "contoso.onmicrosoft.com.evil.com"]
)
def test_an_unlisted_organization_is_refused(organization):
    assert refused_rule(policy().evaluate(request(organization=organization))) == "allowed_organizations"


def test_exact_and_suffix_organizations():
    exact = policy(allowed_organizations=["contoso.com"])
    assert exact.evaluate(request(organization="Contoso.com")).allowed
    assert not exact.evaluate(request(organization="sub.contoso.com")).allowed


def test_a_target_in_another_subscription_is_refused():
    elsewhere = AA.replace(SUB, OTHER_SUB)
    decision = policy().evaluate(request(target=elsewhere))
    assert refused_rule(decision) == "allowed_scopes"
    assert f"/subscriptions/{OTHER_SUB}" in decision.fix


def test_resource_group_scopes_are_exact_unless_they_end_with_a_star():
    exact = policy(allowed_scopes=[f"/subscriptions/{SUB}/resourceGroups/RG-EXO"])
    prefix = policy(allowed_scopes=[f"/subscriptions/{SUB}/resourcegroups/rg-exo-*"])
    assert refused_rule(exact.evaluate(request())) == "allowed_scopes"  # rg-exo-prod is not rg-exo
    assert exact.evaluate(request(target=AA.replace("rg-exo-prod", "rg-exo"))).allowed
    assert prefix.evaluate(request()).allowed
    assert (
        refused_rule(prefix.evaluate(request(target=AA.replace("rg-exo-prod", "rg-other"))))
        == "allowed_scopes"
    )


def test_a_user_assigned_identity_outside_the_scopes_is_refused():
    decision = policy().evaluate(request(target=VM, identity=UAI_ELSEWHERE))
    assert refused_rule(decision) == "allowed_scopes"
    assert "identity" in decision.reason


def test_a_module_version_other_than_the_pin_is_refused_unless_allowed():
    pinned = request(module_versions={"ExchangeOnlineManagement": "3.5.1"})
    newer = request(module_versions={"ExchangeOnlineManagement": "3.9.0"})
    assert policy().evaluate(pinned).allowed
    decision = policy().evaluate(newer)
    assert refused_rule(decision) == "allow_unpinned_module_versions"
    assert "3.5.1" in decision.reason
    allowed = policy(allow_unpinned_module_versions=True).evaluate(newer)
    assert allowed.module_versions[ModuleName.EXCHANGE_ONLINE_MANAGEMENT] == "3.9.0"
    assert allowed.module_versions[ModuleName.POWERSHELL_GET] == "2.2.5"


def test_a_pin_that_does_not_work_on_its_runtime_stops_the_policy_from_loading():
    pins_72 = {"PackageManagement": "1.4.8.1", "PowerShellGet": "2.2.5", "ExchangeOnlineManagement": "3.5.1"}
    text = json.dumps(
        {"pinned_module_versions": {**default_policy_document()["pinned_module_versions"], "7.2": pins_72}}
    )
    with pytest.raises(ConfigurationError) as caught:
        load_policy(text)
    message = caught.value.message
    assert "policy field pinned_module_versions: 7.2.ExchangeOnlineManagement: " in message
    assert "ExchangeOnlineManagement 3.5.1 does not work on PowerShell 7.2" in message
    assert "ExchangeOnlineManagement 3.0.0 or later, before 3.5.0 (default 3.4.0)" in message


@pytest.mark.parametrize(
    ("runtime", "module_versions", "field"),
    [
        ("7.2", {"ExchangeOnlineManagement": "3.5.1"}, "module_versions.ExchangeOnlineManagement"),
        ("7.4", {"ExchangeOnlineManagement": "3.10.0"}, "module_versions.ExchangeOnlineManagement"),
        ("5.1", {"PowerShellGet": "3.0.19-beta19"}, "module_versions.PowerShellGet"),
    ],
)
def test_module_versions_known_not_to_work_on_the_runtime_are_refused_with_what_would(
    runtime, module_versions, field
):
    decision = policy(allow_unpinned_module_versions=True).evaluate(
        request(runtime=runtime, module_versions=module_versions)
    )
    assert refused_rule(decision) == "compatibility"
    assert decision.field == field
    assert "does not work on PowerShell" in decision.reason
    assert decision.fix.startswith("ask for a version that works: ")


def test_a_function_app_gets_the_functions_7_4_defaults_and_their_rules():
    # The policy's pins are per Automation runtime; a Function app runs the PowerShell 7.4 worker.
    decision = policy().evaluate(request(target=FUNC, runtime="5.1"))
    assert decision.allowed and decision.module_versions[ModuleName.EXCHANGE_ONLINE_MANAGEMENT] == "3.5.0"
    assert decision.runtime_environment is None
    refused = policy(allow_unpinned_module_versions=True).evaluate(
        request(target=FUNC, module_versions={"ExchangeOnlineManagement": "3.5.1"})
    )
    assert refused_rule(refused) == "compatibility" and "functions-7.4" in refused.reason
    assert refused.field == "module_versions.ExchangeOnlineManagement"
    # Without allow_unpinned_module_versions, a version other than the default is refused as unpinned.
    assert (
        refused_rule(
            policy().evaluate(request(target=FUNC, module_versions={"ExchangeOnlineManagement": "3.4.0"}))
        )
        == "allow_unpinned_module_versions"
    )


def test_a_vm_runs_its_modules_in_windows_powershell_51_whatever_the_runtime():
    decision = policy(allow_unpinned_module_versions=True).evaluate(
        request(target=VM, runtime="7.2", module_versions={"ExchangeOnlineManagement": "3.9.0"})
    )
    assert decision.allowed, decision.reason


UAI_HERE = f"{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uai-01"


def test_a_hybrid_worker_group_takes_the_system_identity_never_a_user_assigned_one():
    assert policy().evaluate(request(hybrid_worker_group="Workers")).allowed
    refused = policy().evaluate(request(hybrid_worker_group="Workers", identity=UAI_HERE))
    assert refused_rule(refused) == "hosts" and refused.field == "hybrid_worker_group"
    assert "cloud jobs only" in refused.reason and "identity 'system'" in refused.fix
    assert policy().evaluate(request(identity=UAI_HERE)).allowed  # in Azure's sandbox it works


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"target": VM, "hybrid_worker_group": "Workers"}, "only used for Automation account targets"),
        ({"hybrid_worker_group": "Workers'; drop"}, "not a valid Hybrid Runbook Worker group name"),
        ({"hybrid_worker_group": ""}, "not a valid Hybrid Runbook Worker group name"),
    ],
)
def test_a_hybrid_worker_group_is_checked_before_the_policy(changes, message):
    with pytest.raises(InputError) as caught:
        request(**changes)
    assert caught.value.field == "hybrid_worker_group" and message in caught.value.reason


def test_a_runtime_not_allowed_is_refused():
    only_51 = policy(allowed_runtimes=["5.1"])
    assert refused_rule(only_51.evaluate(request(runtime="7.4"))) == "allowed_runtimes"


def test_callbacks_go_to_port_443_unless_the_policy_names_a_port():
    hosts = policy(callback_hosts=["*.logic.azure.com", "hooks.contoso.com:8443", "[::1]:9443"])
    allowed = [
        "https://prod-1.westeurope.logic.azure.com/cb",
        "https://prod-1.westeurope.logic.azure.com:443/cb",
        "https://hooks.contoso.com:8443/cb",
        "https://[::1]:9443/cb",
    ]
    refused = ["https://prod-1.westeurope.logic.azure.com:8443/cb", "https://hooks.contoso.com/cb"]
    for url in allowed:
        assert hosts.evaluate(request(callback_url=url)).allowed, url
    for url in refused:
        assert refused_rule(hosts.evaluate(request(callback_url=url))) == "callback_hosts", url
    with pytest.raises(ConfigurationError):
        policy(callback_hosts=["hooks.contoso.com:70000"])


def test_callback_hosts_are_allow_listed():
    url = "https://prod-12.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke"
    assert refused_rule(policy().evaluate(request(callback_url=url))) == "callback_hosts"
    assert policy(callback_hosts=["*.logic.azure.com"]).evaluate(request(callback_url=url)).allowed


def test_channels_are_allow_listed_for_provision_and_revoke():
    no_tags = policy(allowed_channels=["http"])
    assert refused_rule(no_tags.evaluate(request(channel="tag"))) == "allowed_channels"
    revoke = RevokeRequest.parse(
        {"target": AA.replace(SUB, OTHER_SUB), "requested_by": "x", "channel": "tag"}
    )
    assert refused_rule(no_tags.evaluate(revoke)) == "allowed_channels"
    # Revocation is never refused for scope, organization or role: taking access away must stay possible.
    assert load_policy().evaluate(revoke.model_copy(update={"channel": "http"})).allowed


# --- effective values --------------------------------------------------------------------------------


def test_effective_values_for_an_automation_account_on_powershell_7_4():
    decision = policy().evaluate(request(runtime="7.4"))
    assert decision.allowed and decision.refusal() is None
    assert decision.role is Role.EXCHANGE_RECIPIENT_ADMINISTRATOR
    assert decision.role_template_id == "31392ffb-586c-42d1-9346-e59415a2cc4e"
    assert decision.runtime is Runtime.PS74
    assert decision.runtime_environment == "exomi-powershell-7-4"
    assert decision.runbook_name == "exomi-connect-exchange"
    assert (
        policy().evaluate(request(runtime="7.2", runtime_environment="ops-ps72")).runtime_environment
        == "ops-ps72"
    )


def test_no_runtime_environment_for_5_1_or_for_a_vm():
    assert policy().evaluate(request()).runtime_environment is None
    assert policy().evaluate(request(target=VM, runtime="7.4")).runtime_environment is None


# --- loading -----------------------------------------------------------------------------------------


def test_a_policy_file_is_read_and_the_setting_text_wins_over_it(tmp_path):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({**OPEN, "default_role": "Security Reader"}))
    assert load_policy(path=path).default_role is Role.SECURITY_READER
    assert load_policy(json.dumps(OPEN), path).default_role is Role.EXCHANGE_RECIPIENT_ADMINISTRATOR


def test_fields_left_out_keep_their_default():
    loaded = load_policy(json.dumps({"allowed_organizations": ["contoso.com"]}))
    assert loaded.allowed_organizations == ["contoso.com"]
    assert loaded.default_role is Role.EXCHANGE_RECIPIENT_ADMINISTRATOR


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "must be a JSON object"),
        ('{"allow_everything": true}', "policy field allow_everything: is not a policy field"),
        ('{"allowed_roles": ["Owner"]}', "policy field allowed_roles.0"),
        ('{"allowed_organizations": ["contoso.com\' or 1 eq 1"]}', "policy field allowed_organizations.0"),
        (
            '{"allowed_scopes": ["/subscriptions/not-a-guid"]}',
            "policy field allowed_scopes.0: must be a GUID",
        ),
        ('{"allowed_scopes": ["/subscriptions/../x"]}', "policy field allowed_scopes.0"),
        (
            '{"default_role": "Exchange Administrator"}',
            "policy field default_role: 'Exchange Administrator' must also be listed",
        ),
        ('{"allow_global_administrator": "yes"}', "policy field allow_global_administrator"),
        (
            '{"pinned_module_versions": {"5.1": {"ExchangeOnlineManagement": "3.5.1"}}}',
            "policy field pinned_module_versions: has no version of PackageManagement",
        ),
        (
            '{"pinned_module_versions": {"7.4": {"ExchangeOnlineManagement": "latest"}}}',
            "policy field pinned_module_versions.7.4.ExchangeOnlineManagement",
        ),
        ('{"allowed_channels": ["email"]}', "policy field allowed_channels.0"),
    ],
)
def test_a_bad_policy_fails_loudly_naming_the_field(text, expected):
    with pytest.raises(ConfigurationError) as caught:
        load_policy(text)
    assert caught.value.setting == "EXOMI_POLICY"
    assert expected in caught.value.message


def test_an_unreadable_policy_file_names_the_setting(tmp_path):
    with pytest.raises(ConfigurationError) as caught:
        load_policy(path=tmp_path / "missing.json")
    assert caught.value.setting == "EXOMI_POLICY_FILE"


def documented_example() -> str:
    text = (ROOT / "docs" / "POLICY.md").read_text("utf-8")
    block = re.search(r"<!-- example-policy -->\s*```json\n(.*?)```", text, re.S)
    assert block, "docs/POLICY.md must show its example in a json block after <!-- example-policy -->"
    return block.group(1)


def test_the_documented_example_is_a_valid_policy():
    loaded = load_policy(documented_example())
    assert Role.EXCHANGE_ADMINISTRATOR in loaded.allowed_roles
    assert [rule.name for rule in loaded.rules] == [
        "platform-team",
        "app-team-tags",
        "app-team-http",
        "service-desk",
    ]


# --- who may ask: the rules' data (their evaluation is in test_authorization.py) -----------------------


def test_the_default_admits_nobody_through_rules_and_needs_no_approval():
    loaded = policy()
    assert loaded.rules == []
    assert loaded.approval.approvers == [] and not loaded.approval.required_anywhere
    assert loaded.expiry.max_duration == {} and loaded.expiry.required_for_roles == []


def test_allowed_callers_is_refused_with_a_pointer_to_rules():
    with pytest.raises(ConfigurationError) as caught:
        policy(allowed_callers=["*@contoso.com"])
    assert "allowed_callers" in caught.value.message and "rules" in caught.value.message


@pytest.mark.parametrize(
    ("rules", "field"),
    [
        ([{"name": "r", "channels": ["http"]}], "rules.0"),  # names nobody
        ([{"name": "r", "channels": [], "principals": ["*"]}], "rules.0.channels"),
        ([{"name": "r", "channels": ["cli"], "principals": ["*"]}], "rules.0.channels.0"),
        ([{"name": "r", "channels": ["tag"], "target_roles": ["Own*"]}], "rules.0.target_roles.0"),
        ([{"name": "", "channels": ["tag"], "principals": ["*"]}], "rules.0.name"),
        ([{"name": "r", "channels": ["tag"], "principals": ["*"], "scopes": ["nope"]}], "rules.0.scopes.0"),
        ([{"name": "r", "channels": ["tag"], "principals": ["*"], "colour": "red"}], "rules.0.colour"),
        (
            [
                {"name": "Same", "channels": ["tag"], "principals": ["*"]},
                {"name": "same", "channels": ["http"], "principals": ["*"]},
            ],
            "rules",
        ),
    ],
)
def test_a_bad_rule_stops_the_app_naming_its_field(rules, field):
    with pytest.raises(ConfigurationError) as caught:
        policy(rules=rules)
    assert f"policy field {field}:" in caught.value.message


def test_required_approval_needs_approvers():
    with pytest.raises(ConfigurationError) as caught:
        policy(approval={"required_for_roles": ["Exchange Administrator"]})
    assert "approval.approvers" in caught.value.message
    with pytest.raises(ConfigurationError):
        policy(rules=[{"name": "r", "channels": ["tag"], "principals": ["*"], "require_approval": True}])
    assert policy(approval={"approvers": ["secops-*"], "required_for_roles": ["Exchange Administrator"]})


@pytest.mark.parametrize("timeout", ["2 days", "P0D", "PT", "-P1D", 3600])
def test_durations_must_be_iso_8601_and_positive(timeout):
    with pytest.raises(ConfigurationError) as caught:
        policy(approval={"timeout": timeout})
    assert "approval.timeout" in caught.value.message


# --- access that expires ------------------------------------------------------------------------------


def test_a_duration_is_bounded_by_the_roles_maximum_and_starts_when_the_access_is_in_place():
    limited = policy(expiry={"max_duration": {"Exchange Recipient Administrator": "P7D"}})
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    decision = limited.evaluate(request(expires="P7D"), now)
    assert decision.allowed and decision.expires_at is None  # the engine sets it when the request succeeds
    assert limited.evaluate(request(expires="2026-12-05"), now).expires_at == datetime(
        2026, 12, 6, tzinfo=UTC
    )
    assert refused_rule(limited.evaluate(request(expires="2026-12-31"), now)) == "expiry.max_duration"
    assert refused_rule(limited.evaluate(request(expires="P8D"), now)) == "expiry.max_duration"
    assert refused_rule(limited.evaluate(request(), now)) == "expiry.max_duration"  # a limit needs an end
    assert limited.evaluate(request(role="Global Reader"), now).expires_at is None  # no limit for it


def test_a_date_means_the_end_of_that_day_utc():
    decision = policy().evaluate(request(expires="2099-01-31"))
    assert decision.expires_at == datetime(2099, 2, 1, tzinfo=UTC)
    assert policy().evaluate(request(expires="2099-01-31T18:00:00+02:00")).expires_at == datetime(
        2099, 1, 31, 16, 0, tzinfo=UTC
    )


def test_a_duration_can_be_mandatory_for_a_role():
    strict = policy(expiry={"required_for_roles": ["Exchange Recipient Administrator"]})
    refusal = strict.evaluate(request())
    assert refused_rule(refusal) == "expiry.required_for_roles" and refusal.field == "expires"
    assert strict.evaluate(request(expires="PT8H")).allowed


@pytest.mark.parametrize("expires", ["2001-01-01", "P0D", "soon", "P1Y2", "2026-13-01"])
def test_a_bad_or_past_expiry_is_invalid_input(expires):
    with pytest.raises(InputError) as caught:
        request(expires=expires)
    assert caught.value.field == "expires"


def test_expiry_revocations_are_always_allowed():
    narrow = policy(allowed_channels=["http"])
    assert narrow.evaluate(
        RevokeRequest.parse({"target": AA, "requested_by": "exomi", "channel": "expiry"})
    ).allowed


def test_refusals_name_the_request_field_they_are_about():
    assert policy().evaluate(request(role="Global Administrator")).refusal().to_dict()["field"] == "role"
    outside = policy().evaluate(request(target=VM, identity=UAI_ELSEWHERE))
    assert (outside.rule, outside.field) == ("allowed_scopes", "identity")
