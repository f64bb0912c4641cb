"""`exomi bootstrap` and `exomi doctor` against a tenant where exomi's identity starts with nothing: the
admin runs bootstrap (their own rights), exomi can then provision, a second run writes nothing, and doctor
reports each gap made afterwards with its fix. Every assertion reads the tenant back."""

from __future__ import annotations

import subprocess

import pytest

from tests.engine.conftest import RG
from tests.support.exomi import EXOMI, ROOT
from tests.support.webhook import Webhook

EXO_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
# Microsoft Graph's app role ids (learn.microsoft.com/graph/permissions-reference).
GRAPH_APP_ROLES = {
    "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30": "Application.Read.All",
    "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9": "Application.ReadWrite.All",
    "06b708a9-e830-4db3-a914-8e69da51d44f": "AppRoleAssignment.ReadWrite.All",
    "9e3f62cf-ca93-4989-b6ce-bf83c28f9fe8": "RoleManagement.ReadWrite.Directory",
    "498476ce-e0fe-48b0-b801-37ba7e2685c6": "Organization.Read.All",
}
NEEDED = {"Application.Read.All", "AppRoleAssignment.ReadWrite.All", "RoleManagement.ReadWrite.Directory"}
BUILT_IN = {"Reader", "Automation Contributor", "Virtual Machine Contributor"}


@pytest.fixture
def webhook():
    hook = Webhook().start()
    yield hook
    hook.stop()


@pytest.fixture
def fresh(emulator):
    """A tenant without the Exchange Online principal, where exomi's identity holds no permission; the
    resource group for new system topics exists in each subscription."""
    emulator.reset(app_permissions=False, with_exchange_sp=False)
    for subscription in emulator.subscription_ids:
        emulator.resources(subscription_id=subscription).resource_groups.create_or_update(
            RG, {"location": "westeurope"}
        )
    return emulator


def _bootstrap_args(emulator, webhook, *extra: str) -> tuple[str, ...]:
    return (
        "bootstrap",
        "--principal-id",
        emulator.app_principal_id,
        "--event-endpoint",
        webhook.url + "?functionName=on_resource_event&code=k1",
        "--topic-resource-group",
        RG,
        *extra,
    )


def _bootstrap(exomi, emulator, webhook, *extra: str):
    return exomi.run(*_bootstrap_args(emulator, webhook, *extra), as_admin=True)


def _doctor(exomi, emulator, webhook):
    return exomi.run(
        "doctor",
        "--principal-id",
        emulator.app_principal_id,
        "--event-endpoint",
        webhook.url + "?functionName=on_resource_event&code=k1",
        as_admin=True,
    )


def _exomi_grants(emulator) -> tuple[set[str], set[tuple[str, str]]]:
    """(Graph permissions, (role, scope)) exomi's identity holds, from the tenant's state."""
    app = next(p for p in emulator.principals() if p["id"] == emulator.app_principal_id)
    permissions = {GRAPH_APP_ROLES.get(a["appRoleId"], a["appRoleId"]) for a in app["appRoleAssignments"]}
    return permissions, {(r["role"], r["scope"]) for r in app["armRoles"]}


def _real_writes(emulator, position: int) -> list[dict]:
    # getFullUrl reads a webhook's URL, but ARM spells it POST.
    return [e for e in emulator.writes_since(position) if not e["path"].endswith("/getFullUrl")]


def test_bootstrap_lets_exomi_provision_and_a_second_run_changes_nothing(fresh, exomi, targets, webhook):
    emulator = fresh
    account = targets.automation_account()
    code, output, _ = exomi.run("provision", "--target", account.id, "--organization", emulator.organization)
    assert code != 0 and output["error"]["code"] == "PermissionMissing"  # nothing granted yet

    position = emulator.log_position()
    code, plan, stderr = _bootstrap(exomi, emulator, webhook)
    assert code == 0, stderr
    assert plan["applied"] is False and plan["changes"] > 0
    assert _real_writes(emulator, position) == []  # the plan writes nothing

    code, applied, stderr = _bootstrap(exomi, emulator, webhook, "--apply")
    assert code == 0, (applied, stderr)
    assert applied["changes"] == plan["changes"]
    graph_permissions, roles = _exomi_grants(emulator)
    assert graph_permissions == NEEDED  # Read.All, not ReadWrite: bootstrap created the Exchange principal
    scopes = {f"/subscriptions/{s}" for s in emulator.subscription_ids}
    assert roles == {(role, scope) for role in BUILT_IN for scope in scopes}
    assert webhook.validations  # the event subscription was validated by its endpoint
    topics = list(emulator.eventgrid().system_topics.list_by_subscription())
    assert [t.source for t in topics] == [f"/subscriptions/{emulator.subscription_id}"]

    code, output, stderr = exomi.run(
        "provision", "--target", account.id, "--organization", emulator.organization
    )
    assert code == 0 and output["status"] == "succeeded", (output, stderr[-2000:])

    position = emulator.log_position()
    code, again, stderr = _bootstrap(exomi, emulator, webhook, "--apply")
    assert code == 0 and again["changes"] == 0, again
    assert _real_writes(emulator, position) == []

    code, report, stderr = _doctor(exomi, emulator, webhook)
    assert code == 0 and report["ok"], report
    verdicts = {c["name"]: c["verdict"] for c in report["checks"]}
    assert set(verdicts.values()) == {"ok"}
    assert {"Application.Read.All", "policy", "state tables and work queue"} <= set(verdicts)
    # exomi itself (Reader, no getFullUrl) may run it too; the text form ends "all OK" (exit 0).
    webhook_endpoint = webhook.url + "?functionName=on_resource_event&code=k1"
    text = exomi.run_text(
        "doctor", "--principal-id", emulator.app_principal_id, "--event-endpoint", webhook_endpoint
    )
    assert text.rstrip().endswith("all OK") and "[OK     ] eventgrid" in text


def test_bootstrap_reuses_the_system_topic_another_tool_made(fresh, exomi, targets, webhook):
    emulator = fresh
    client = emulator.eventgrid()
    emulator.resources().resource_groups.create_or_update("rg-defender", {"location": "westeurope"})
    source = f"/subscriptions/{emulator.subscription_id}"
    client.system_topics.begin_create_or_update(
        "rg-defender",
        "defender-topic",
        {"location": "global", "source": source, "topicType": "Microsoft.Resources.Subscriptions"},
    ).result()
    code, _, stderr = _bootstrap(exomi, emulator, webhook, "--apply")
    assert code == 0, stderr
    assert [t.name for t in client.system_topics.list_by_subscription()] == ["defender-topic"]
    created = client.system_topic_event_subscriptions.get("rg-defender", "defender-topic", "exomi-tags")
    assert created.provisioning_state == "Succeeded"
    assert created.filter.included_event_types == [
        "Microsoft.Resources.ResourceWriteSuccess",
        "Microsoft.Resources.ResourceDeleteSuccess",
    ]


async def test_doctor_reports_exactly_the_gaps_with_their_fixes(fresh, exomi, targets, webhook):
    emulator = fresh
    code, _, stderr = _bootstrap(exomi, emulator, webhook, "--apply")
    assert code == 0, stderr
    # An admin takes one Graph permission, one role assignment and the event subscription away.
    graph = emulator.graph()
    app_roles = (
        await graph.service_principals.by_service_principal_id(
            emulator.app_principal_id
        ).app_role_assignments.get()
    ).value
    role_management = "9e3f62cf-ca93-4989-b6ce-bf83c28f9fe8"
    (assignment,) = [a for a in app_roles if str(a.app_role_id) == role_management]
    await (
        graph.service_principals.by_service_principal_id(emulator.app_principal_id)
        .app_role_assignments.by_app_role_assignment_id(assignment.id)
        .delete()
    )
    scope = f"/subscriptions/{emulator.subscription_id}"
    authorization = emulator.authorization()
    vm_contributor = next(
        a
        for a in authorization.role_assignments.list_for_scope(
            scope, filter=f"assignedTo('{emulator.app_principal_id}')"
        )
        if a.role_definition_id.endswith("9980e02c-c2be-4d73-94e8-173b1dc7cf3c") and a.scope == scope
    )
    authorization.role_assignments.delete_by_id(vm_contributor.id)
    emulator.eventgrid().system_topic_event_subscriptions.begin_delete(
        RG, f"exomi-arm-{emulator.subscription_id}", "exomi-tags"
    ).result()

    code, report, _ = _doctor(exomi, emulator, webhook)
    assert code == 1 and not report["ok"]
    gaps = {c["name"]: c for c in report["checks"] if c["verdict"] != "ok"}
    subscription_check = f"event subscription exomi-tags in {scope}"
    assert set(gaps) == {
        "RoleManagement.ReadWrite.Directory",
        f"Virtual Machine Contributor at {scope}",
        subscription_check,
    }
    assert all(g["verdict"] == "missing" for g in gaps.values())
    assert "appRoleAssignments" in gaps["RoleManagement.ReadWrite.Directory"]["fix"]
    assert role_management in gaps["RoleManagement.ReadWrite.Directory"]["fix"]
    assert "az role assignment create" in gaps[f"Virtual Machine Contributor at {scope}"]["fix"]
    assert "exomi bootstrap --apply --event-endpoint" in gaps[subscription_check]["fix"]

    code, _, stderr = _bootstrap(exomi, emulator, webhook, "--apply")
    assert code == 0, stderr
    code, report, _ = _doctor(exomi, emulator, webhook)
    assert code == 0 and report["ok"], report


def test_a_custom_role_with_only_exomis_actions_is_enough_to_provision(fresh, exomi, targets, webhook):
    emulator = fresh
    code, applied, stderr = _bootstrap(exomi, emulator, webhook, "--apply", "--roles", "custom")
    assert code == 0, (applied, stderr)
    (definition,) = emulator.authorization().role_definitions.list(
        f"/subscriptions/{emulator.subscription_id}", filter="roleName eq 'exomi operator'"
    )
    assert definition.role_type == "CustomRole"
    assert set(definition.assignable_scopes) == {f"/subscriptions/{s}" for s in emulator.subscription_ids}
    assert "Microsoft.Compute/virtualMachines/runCommand/action" in definition.permissions[0].actions
    _, roles = _exomi_grants(emulator)
    assert {role for role, _ in roles} == {"exomi operator"}  # no built-in role

    account = targets.automation_account()
    code, output, stderr = exomi.run(
        "provision", "--target", account.id, "--organization", emulator.organization
    )
    assert code == 0 and output["status"] == "succeeded", (output, stderr[-2000:])
    vm = targets.virtual_machine()
    code, output, stderr = exomi.run("provision", "--target", vm.id, "--organization", emulator.organization)
    assert code == 0 and output["status"] == "succeeded", (output, stderr[-2000:])

    position = emulator.log_position()
    code, again, _ = _bootstrap(exomi, emulator, webhook, "--apply", "--roles", "custom")
    assert code == 0 and again["changes"] == 0, again
    assert _real_writes(emulator, position) == []


def test_bootstrap_takes_application_readwrite_back_once_the_exchange_principal_exists(
    emulator, exomi, targets, webhook
):
    # The emulator's default tenant: exomi was given what the old consent script granted.
    for subscription in emulator.subscription_ids:
        emulator.resources(subscription_id=subscription).resource_groups.create_or_update(
            RG, {"location": "westeurope"}
        )
    before, _ = _exomi_grants(emulator)
    assert "Application.ReadWrite.All" in before
    code, report, _ = _doctor(exomi, emulator, webhook)
    assert code == 1
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["Application.ReadWrite.All"]["verdict"] == "wrong"
    assert checks["Organization.Read.All"]["verdict"] == "extra"  # not needed, left to the admin

    code, applied, stderr = _bootstrap(exomi, emulator, webhook, "--apply")
    assert code == 0, (applied, stderr)
    after, _ = _exomi_grants(emulator)
    assert after == NEEDED | {"Organization.Read.All"}


READ_WRITE = "Application.ReadWrite.All"


def _operator_may_only(emulator, graph_permissions: set[str], arm_role: str) -> None:
    """The identity running bootstrap is no Global Administrator: it holds only ``graph_permissions`` on
    Microsoft Graph and ``arm_role`` in each subscription (instead of Owner)."""
    admin = emulator.admin_principal_id
    for permission in sorted(graph_permissions):
        emulator.ctl("POST", "/graph-permissions", {"principal_id": admin, "permission": permission})
    emulator.ctl("DELETE", "/grants", {"principal_id": admin, "directory_role": "Global Administrator"})
    for subscription in emulator.subscription_ids if arm_role != "Owner" else ():
        scope = f"/subscriptions/{subscription}"
        emulator.ctl("POST", "/rbac", {"principal_id": admin, "role": arm_role, "scope": scope})
        emulator.ctl("DELETE", "/rbac", {"principal_id": admin, "role": "Owner", "scope": scope})


def _exchange_principal_exists(emulator) -> bool:
    return any(p.get("appId") == EXO_APP_ID for p in emulator.principals())


def _successful_writes(emulator, position: int) -> list[dict]:
    return [e for e in _real_writes(emulator, position) if e["status"] < 400]


def test_an_operator_who_may_neither_create_the_exchange_principal_nor_grant_readwrite_changes_nothing(
    fresh, exomi, webhook
):
    emulator = fresh
    _operator_may_only(emulator, {"Application.Read.All"}, "Owner")
    position = emulator.log_position()
    code, output, stderr = _bootstrap(exomi, emulator, webhook, "--apply")
    assert code != 0, (output, stderr)
    error = output["error"]
    assert error["code"] == "PermissionMissing" and error["service"] == "Microsoft Graph"
    # It names both rights the operator lacks, says nothing changed, and gives the fix.
    assert "may neither create it" in error["message"] and "Application Administrator" in error["message"]
    assert "AppRoleAssignment.ReadWrite.All" in error["message"] and "Nothing was changed" in error["message"]
    assert f"az ad sp create --id {EXO_APP_ID}" in error["fix"] and "exomi bootstrap --apply" in error["fix"]
    assert _successful_writes(emulator, position) == []
    assert _exomi_grants(emulator) == (set(), set())  # no Application.ReadWrite.All left behind
    assert not _exchange_principal_exists(emulator)

    # The fix: the operator gets a role that may create it (here Global Administrator again).
    emulator.ctl(
        "POST",
        "/grants",
        {
            "principal_id": emulator.admin_principal_id,
            "directory_role": "Global Administrator",
            "backdate": True,
        },
    )
    code, applied, stderr = _bootstrap(exomi, emulator, webhook, "--apply")
    assert code == 0, (applied, stderr)
    assert _exchange_principal_exists(emulator)
    graph_permissions, roles = _exomi_grants(emulator)
    assert graph_permissions == NEEDED and len(roles) == len(BUILT_IN) * len(emulator.subscription_ids)


def test_the_temporary_readwrite_fallback_is_planned_undone_when_the_run_fails_and_taken_back_later(
    fresh, exomi, targets, webhook
):
    """The operator may grant Graph app roles but not create service principals (no Entra role for it),
    and may not assign Azure roles (Reader only): the plan says exomi would get Application.ReadWrite.All
    for a while and when it is taken back; the failing run takes it back at once; after the fix exomi
    holds it until its first provision has created the principal, and the next run revokes it."""
    emulator = fresh
    _operator_may_only(emulator, {"Application.Read.All", "AppRoleAssignment.ReadWrite.All"}, "Reader")

    position = emulator.log_position()
    code, plan, stderr = _bootstrap(exomi, emulator, webhook)
    assert code == 0, (plan, stderr)
    assert _real_writes(emulator, position) == []
    items = {(i["area"], i["name"]): i for i in plan["items"]}
    assert items[("graph", "Office 365 Exchange Online service principal")]["verdict"] == "missing"
    fallback = items[("graph", READ_WRITE)]
    assert fallback["verdict"] == "fallback" and not fallback["done"]
    assert "grant Application.ReadWrite.All" in fallback["action"] and "(temporary)" in fallback["action"]
    assert "revoke it" in fallback["action"] and "takes it back" in fallback["action"]
    assert f"az ad sp create --id {EXO_APP_ID}" in fallback["fix"]
    text = subprocess.run(
        [EXOMI, *_bootstrap_args(emulator, webhook)],
        cwd=ROOT,
        env={**exomi.env(), "AZURE_CLIENT_ID": emulator.admin_client_id},  # as exomi.run(as_admin=True)
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert f"[IF NEED] graph     {READ_WRITE}" in text and "would: grant Application.ReadWrite.All" in text

    code, output, stderr = _bootstrap(exomi, emulator, webhook, "--apply")
    assert code != 0, (output, stderr)
    error = output["error"]
    assert error["code"] == "PermissionMissing" and error["service"] == "Azure RBAC"
    assert "Microsoft.Authorization/roleAssignments/write" in error["permission"]
    assert "Owner, User Access Administrator" in error["message"]
    assert "temporary Application.ReadWrite.All grant was revoked again" in error["message"]
    assert f"{len(NEEDED)} change(s) before it were made and stay" in error["message"]  # the Graph grants
    assert "az role assignment create" in error["fix"] and "exomi bootstrap --apply again" in error["fix"]
    graph_permissions, roles = _exomi_grants(emulator)
    assert graph_permissions == NEEDED and roles == set()  # what was done stays; no ReadWrite left
    assert not _exchange_principal_exists(emulator)

    # The fix: the operator becomes Owner. The re-run finishes, exomi keeps ReadWrite for now.
    for subscription in emulator.subscription_ids:
        emulator.ctl(
            "POST",
            "/rbac",
            {
                "principal_id": emulator.admin_principal_id,
                "role": "Owner",
                "scope": f"/subscriptions/{subscription}",
            },
        )
    code, applied, stderr = _bootstrap(exomi, emulator, webhook, "--apply")
    assert code == 0, (applied, stderr)
    done = {i["name"]: i for i in applied["items"] if i["area"] == "graph"}
    assert (
        done[READ_WRITE]["done"]
        and "revokes it" in done["Office 365 Exchange Online service principal"]["detail"]
    )
    graph_permissions, roles = _exomi_grants(emulator)
    assert graph_permissions == NEEDED | {READ_WRITE} and len(roles) == len(BUILT_IN) * len(
        emulator.subscription_ids
    )

    # exomi's first provision creates the principal (its exchange-sp step); the next run takes ReadWrite back.
    account = targets.automation_account()
    code, output, stderr = exomi.run(
        "provision", "--target", account.id, "--organization", emulator.organization
    )
    assert code == 0 and output["status"] == "succeeded", (output, stderr[-2000:])
    assert _exchange_principal_exists(emulator)
    code, again, stderr = _bootstrap(exomi, emulator, webhook, "--apply")
    assert code == 0 and again["changes"] == 1, (again, stderr)
    assert _exomi_grants(emulator)[0] == NEEDED
