"""Revocation removes exactly what exomi granted (and keeps a shared identity's grants while another
target uses it); plan and diagnose change nothing and say what would change or what is wrong."""

from __future__ import annotations

from tests.engine.conftest import RG
from tests.engine.test_provision import (
    GLOBAL_READER,
    RECIPIENT_ADMIN,
    assert_succeeded,
    exchange_grants,
    grants_of,
)


def _provision(exomi, emulator, target_id: str, *extra: str) -> dict:
    code, output, stderr = exomi.run(
        "provision", "--target", target_id, "--organization", emulator.organization, *extra
    )
    assert_succeeded(code, output, stderr)
    return output


async def test_revoke_removes_exactly_what_exomi_granted(emulator, exomi, targets):
    account = targets.automation_account()
    principal_id = account.identity.principal_id
    _provision(exomi, emulator, account.id)
    # The admin gave the identity an extra role by hand: exomi did not grant it, so it stays.
    await _assign_by_hand(emulator, principal_id, "f2ef992c-3afb-46b9-b7cf-a126ee74c451")
    code, output, stderr = exomi.run("revoke", "--target", account.id)
    assert code == 0 and output["status"] == "revoked", (output, stderr)
    app_roles, roles = await grants_of(emulator, principal_id)
    assert exchange_grants(app_roles, emulator.exchange_service_principal_id) == []
    assert [r.role_definition_id for r in roles] == ["f2ef992c-3afb-46b9-b7cf-a126ee74c451"]
    names = [r.name for r in emulator.automation().runbook.list_by_automation_account(RG, account.name)]
    assert "exomi-connect-exchange" not in names
    # Revoking again finds nothing to do and writes nothing.
    position = emulator.log_position()
    code, output, _ = exomi.run("revoke", "--target", account.id)
    assert code == 0 and emulator.writes_since(position) == []


async def test_a_shared_user_assigned_identity_keeps_its_grants_until_the_last_target_goes(
    emulator, exomi, targets
):
    uai = targets.user_assigned_identity()
    first = targets.automation_account("ContosoAzAuto1", system=False, user_assigned=[uai.id])
    second = targets.virtual_machine("contoso-vm1", system=False, user_assigned=[uai.id])
    _provision(exomi, emulator, first.id, "--identity", uai.id)
    _provision(exomi, emulator, second.id, "--identity", uai.id)

    code, output, _ = exomi.run("revoke", "--target", first.id)
    assert code == 0 and output["status"] == "revoked"
    assert "also used by" in output["message"]
    app_roles, roles = await grants_of(emulator, uai.principal_id)
    assert len(exchange_grants(app_roles, emulator.exchange_service_principal_id)) == 1 and len(roles) == 1

    code, output, _ = exomi.run("revoke", "--target", second.id)
    assert code == 0 and output["status"] == "revoked"
    app_roles, roles = await grants_of(emulator, uai.principal_id)
    assert exchange_grants(app_roles, emulator.exchange_service_principal_id) == [] and roles == []


async def test_targets_sharing_an_identity_with_different_roles_leave_nothing_behind(
    emulator, exomi, targets
):
    uai = targets.user_assigned_identity()
    first = targets.automation_account("ContosoAzAuto1", system=False, user_assigned=[uai.id])
    second = targets.automation_account("ContosoAzAuto2", system=False, user_assigned=[uai.id])
    _provision(exomi, emulator, first.id, "--identity", uai.id, "--role", "Exchange Recipient Administrator")
    _provision(exomi, emulator, second.id, "--identity", uai.id, "--role", "Global Reader")
    assert emulator.exchange_access(uai.principal_id) == (1, sorted([RECIPIENT_ADMIN, GLOBAL_READER]))

    # The first target's role goes with it (nobody else needs it); Exchange.ManageAsApp stays for the second.
    code, output, _ = exomi.run("revoke", "--target", first.id)
    assert code == 0 and output["status"] == "revoked"
    assert emulator.exchange_access(uai.principal_id) == (1, [GLOBAL_READER])
    code, output, _ = exomi.run("revoke", "--target", second.id)
    assert code == 0 and output["status"] == "revoked"
    assert emulator.exchange_access(uai.principal_id) == (0, [])


async def test_a_target_changing_role_keeps_the_role_another_target_of_the_identity_needs(
    emulator, exomi, targets
):
    uai = targets.user_assigned_identity()
    first = targets.automation_account("ContosoAzAuto1", system=False, user_assigned=[uai.id])
    second = targets.automation_account("ContosoAzAuto2", system=False, user_assigned=[uai.id])
    _provision(exomi, emulator, first.id, "--identity", uai.id, "--role", "Exchange Recipient Administrator")
    _provision(exomi, emulator, second.id, "--identity", uai.id, "--role", "Exchange Recipient Administrator")
    _provision(exomi, emulator, first.id, "--identity", uai.id, "--role", "Global Reader")
    # The second target still asks for Exchange Recipient Administrator: the change must not take it away.
    assert emulator.exchange_access(uai.principal_id) == (1, sorted([RECIPIENT_ADMIN, GLOBAL_READER]))
    _provision(exomi, emulator, second.id, "--identity", uai.id, "--role", "Global Reader")
    assert emulator.exchange_access(uai.principal_id) == (1, [GLOBAL_READER])  # now nobody needs it


def test_revoking_a_target_exomi_never_provisioned_ends_at_once(emulator, exomi, targets):
    account = targets.automation_account()
    position = emulator.log_position()
    code, output, stderr = exomi.run("revoke", "--target", account.id)
    assert code == 0 and output["status"] == "revoked", (output, stderr)
    assert "nothing of exomi's to revoke" in output["message"]
    assert emulator.writes_since(position) == []
    code, status, _ = exomi.run("status", output["id"])
    assert any("nothing of exomi's to revoke" in a["action"] for a in status["audit"])
    # It holds nothing: a provision can follow at once.
    _provision(exomi, emulator, account.id)


def test_revoke_removes_exomis_runtime_environment_unless_another_runbook_runs_in_it(
    emulator, exomi, targets
):
    first = targets.automation_account("ContosoAzAuto1")
    second = targets.automation_account("ContosoAzAuto2")
    for account in (first, second):
        _provision(exomi, emulator, account.id, "--runtime", "7.4")
    automation = emulator.automation()
    # Someone else's runbook in the second account runs in exomi's environment too.
    automation.runbook.create_or_update(
        RG,
        second.name,
        "payroll-report",
        {
            "location": "westeurope",
            "properties": {"runbookType": "PowerShell", "runtimeEnvironment": "exomi-powershell-7-4"},
        },
    )

    for account in (first, second):
        code, output, _ = exomi.run("revoke", "--target", account.id)
        assert code == 0 and output["status"] == "revoked"
    environments = {
        account.name: [
            e.name for e in automation.runtime_environments.list_by_automation_account(RG, account.name)
        ]
        for account in (first, second)
    }
    assert "exomi-powershell-7-4" not in environments[first.name]
    assert "exomi-powershell-7-4" in environments[second.name]  # payroll-report still runs in it
    code, output, _ = exomi.run("status", output["id"])
    step = next(s for s in output["steps"] if s["name"] == "revoke-runtime-environment")
    assert "payroll-report" in step["message"]


async def test_revoking_a_deleted_resource_finishes_cleanly(emulator, exomi, targets):
    account = targets.automation_account()
    _provision(exomi, emulator, account.id)
    emulator.automation().automation_account.delete(RG, account.name)  # its identity goes with it
    code, output, stderr = exomi.run("revoke", "--target", account.id)
    assert code == 0 and output["status"] == "revoked", (output, stderr)


def test_plan_shows_every_change_and_makes_none(emulator, exomi, targets):
    account = targets.automation_account()
    position = emulator.log_position()
    code, output, _ = exomi.run("plan", "--target", account.id, "--organization", emulator.organization)
    assert code == 0
    verdicts = {s["name"]: s["verdict"] for s in output["steps"]}
    assert (
        verdicts["identity"] == "ok"
        and verdicts["app-role"] == "missing"
        and verdicts["entra-role"] == "missing"
    )
    assert verdicts["modules"] in ("missing", "wrong") and verdicts["runbook"] in ("missing", "unknown")
    assert any("grant Exchange.ManageAsApp" in (s["action"] or "") for s in output["steps"])
    assert emulator.writes_since(position) == []
    code, requests, _ = exomi.run("list")
    assert requests == []


async def test_diagnose_reports_a_grant_removed_behind_exomis_back(emulator, exomi, targets):
    account = targets.automation_account()
    _provision(exomi, emulator, account.id)
    code, output, _ = exomi.run("diagnose", "--target", account.id)
    assert code == 0 and all(s["verdict"] in ("ok", "n/a") for s in output["steps"])

    graph = emulator.graph()
    principal = graph.service_principals.by_service_principal_id(account.identity.principal_id)
    for assignment in (await principal.app_role_assignments.get()).value:
        await principal.app_role_assignments.by_app_role_assignment_id(assignment.id).delete()
    position = emulator.log_position()
    code, output, _ = exomi.run("diagnose", "--target", account.id)
    assert code == 1
    app_role = next(s for s in output["steps"] if s["name"] == "app-role")
    assert app_role["verdict"] == "missing" and "exomi grants it" in app_role["fix"]
    assert emulator.writes_since(position) == []


async def _assign_by_hand(emulator, principal_id: str, role_definition_id: str) -> None:
    from msgraph.generated.models.unified_role_assignment import UnifiedRoleAssignment

    await emulator.graph().role_management.directory.role_assignments.post(
        UnifiedRoleAssignment(
            principal_id=principal_id, role_definition_id=role_definition_id, directory_scope_id="/"
        )
    )
