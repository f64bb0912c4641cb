"""Refused and invalid requests: a clear error naming the rule, the field or the missing permission,
and nothing written (neither to the tenant nor to exomi's state)."""

from __future__ import annotations

import pytest

from tests.support.exomi import ExomiRunner, policy_for


def _no_state(exomi) -> None:
    code, requests, _ = exomi.run("list")
    assert code == 0 and requests == []


def test_global_administrator_is_refused_by_default_before_any_call(emulator, exomi, targets):
    account = targets.automation_account()
    position = emulator.log_position()
    code, output, _ = exomi.run(
        "provision",
        "--target",
        account.id,
        "--organization",
        emulator.organization,
        "--role",
        "Global Administrator",
    )
    assert code == 2
    assert (
        output["error"]["code"] == "PolicyRefused" and output["error"]["rule"] == "allow_global_administrator"
    )
    assert [e for e in emulator.log(position) if e["service"] in ("arm", "graph")] == []
    _no_state(exomi)


def test_an_organization_outside_the_policy_is_refused(emulator, exomi, targets):
    account = targets.automation_account()
    code, output, _ = exomi.run(
        "provision", "--target", account.id, "--organization", "fabrikam.onmicrosoft.com"
    )
    assert code == 2 and output["error"]["rule"] == "allowed_organizations"
    _no_state(exomi)


def test_a_subscription_outside_the_policy_is_refused(emulator, azurite, targets):
    runner = ExomiRunner(
        emulator,
        azurite,
        policy=policy_for(emulator, allowed_scopes=[f"/subscriptions/{emulator.subscription_ids[1]}"]),
    )
    account = targets.automation_account()
    code, output, _ = runner.run("provision", "--target", account.id, "--organization", emulator.organization)
    assert code == 2 and output["error"]["rule"] == "allowed_scopes"
    _no_state(runner)


ZERO = "00000000-0000-0000-0000-000000000000"
HOSTILE = [
    (
        "target",
        [
            "--target",
            f"/subscriptions/{ZERO}/resourceGroups/rg' or 1 eq 1/providers/Microsoft.Automation/automationAccounts/aa1234",
        ],
    ),
    (
        "target",
        [
            "--target",
            "/subscriptions/not-a-guid/resourceGroups/rg/providers/Microsoft.Automation/automationAccounts/aa1234",
        ],
    ),
    (
        "target",
        [
            "--target",
            f"/subscriptions/{ZERO}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/sa1234",
        ],
    ),
    (
        "target",
        [
            "--target",
            f"/subscriptions/{ZERO}/resourceGroups/../providers/Microsoft.Automation/automationAccounts/aa1234",
        ],
    ),
    ("target", ["--target", "https://management.azure.com/subscriptions/x?$filter=appId eq 'x'"]),
    (
        "identity",
        [
            "--identity",
            f"/subscriptions/{ZERO}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1",
        ],
    ),
    ("organization", ["--organization", "contoso.onmicrosoft.com' or appId ne '"]),
    ("organization", ["--organization", "$filter=1"]),
    ("role", ["--role", "Exchange Administrator' or 1 eq 1"]),
    ("runbook_name", ["--runbook-name", "rb; Remove-Mailbox -Identity *"]),
    ("module_versions.ExchangeOnlineManagement", ["--module-version", "ExchangeOnlineManagement=latest"]),
]


@pytest.mark.parametrize(("field", "args"), HOSTILE, ids=[f"{f}-{i}" for i, (f, _) in enumerate(HOSTILE)])
def test_malformed_or_hostile_input_names_the_field_and_writes_nothing(emulator, exomi, targets, field, args):
    account = targets.automation_account()
    options = {"--target": account.id, "--organization": emulator.organization}
    options[args[0]] = args[1]
    position = emulator.log_position()
    code, output, _ = exomi.run("provision", *[x for pair in options.items() for x in pair])
    assert code == 2, output
    assert output["error"]["code"] == "InvalidInput"
    assert output["error"]["field"] == field, output["error"]
    assert [e for e in emulator.log(position) if e["service"] in ("arm", "graph")] == []
    _no_state(exomi)


@pytest.mark.parametrize(
    ("permission", "named", "step"),
    [
        ("Application.ReadWrite.All", "Application.Read.All", "exchange-sp"),
        ("AppRoleAssignment.ReadWrite.All", "AppRoleAssignment.ReadWrite.All", "app-role"),
        ("RoleManagement.ReadWrite.Directory", "RoleManagement.ReadWrite.Directory", "entra-role"),
    ],
)
def test_each_missing_graph_permission_fails_naming_it(emulator, exomi, targets, permission, named, step):
    account = targets.automation_account()
    emulator.ctl(
        "DELETE", "/graph-permissions", {"principal_id": emulator.app_principal_id, "permission": permission}
    )
    code, output, _ = exomi.run("provision", "--target", account.id, "--organization", emulator.organization)
    assert code == 1 and output["status"] == "failed"
    assert output["error"]["code"] == "PermissionMissing"
    assert output["error"]["permission"] == named and named in output["message"]
    assert "To fix" in output["message"]
    assert step in [s["name"] for s in output["steps"] if s["status"] == "failed"]


@pytest.mark.parametrize(
    ("role", "action"),
    [
        ("Automation Contributor", "Microsoft.Automation/automationAccounts/modules/write"),
        ("Virtual Machine Contributor", "Microsoft.Compute/virtualMachines/runCommand/action"),
    ],
)
def test_each_missing_arm_role_fails_naming_the_action(emulator, exomi, targets, role, action):
    target = targets.automation_account() if role == "Automation Contributor" else targets.virtual_machine()
    emulator.ctl("DELETE", "/rbac", {"principal_id": emulator.app_principal_id, "role": role})
    code, output, _ = exomi.run("provision", "--target", target.id, "--organization", emulator.organization)
    assert code == 1 and output["error"]["code"] == "PermissionMissing"
    assert output["error"]["permission"] == action and output["error"]["service"] == "Azure RBAC"


def test_a_target_without_a_system_identity_fails_with_the_fix(emulator, exomi, targets):
    account = targets.automation_account(system=False)
    code, output, _ = exomi.run("provision", "--target", account.id, "--organization", emulator.organization)
    assert code == 1 and output["error"]["code"] == "PrerequisiteMissing"
    assert "no system-assigned managed identity" in output["message"] and "Identity" in output["error"]["fix"]
    writes = [
        e for e in emulator.log() if e["method"] != "GET" and e["caller_id"] == emulator.app_principal_id
    ]
    assert writes == []


def test_a_user_assigned_identity_not_attached_to_the_target_fails(emulator, exomi, targets):
    uai = targets.user_assigned_identity()
    account = targets.automation_account()
    code, output, _ = exomi.run(
        "provision", "--target", account.id, "--identity", uai.id, "--organization", emulator.organization
    )
    assert code == 1 and "is not attached" in output["message"]
