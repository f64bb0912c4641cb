"""Rollback: a provision request that fails takes back what it granted that no other target needs
(policy on_failure rollback, the default), step by step in its audit; with on_failure keep it leaves it."""

from __future__ import annotations

from tests.engine.test_provision import GLOBAL_READER, RECIPIENT_ADMIN
from tests.support.exomi import ExomiRunner, policy_for


def fail_app_role_grants(emulator) -> None:
    """exomi loses AppRoleAssignment.ReadWrite.All: the app-role step fails, the entra-role step (run at
    the same time) has assigned its role by then."""
    emulator.ctl(
        "DELETE",
        "/graph-permissions",
        {"principal_id": emulator.app_principal_id, "permission": "AppRoleAssignment.ReadWrite.All"},
    )


def test_a_failed_request_rolls_back_the_role_it_assigned(emulator, exomi, targets):
    account = targets.automation_account()
    fail_app_role_grants(emulator)
    code, output, _ = exomi.run("provision", "--target", account.id, "--organization", emulator.organization)
    assert code == 1 and output["error"]["code"] == "PermissionMissing"
    assert "rolled back: entra-role Exchange Recipient Administrator" in output["message"]
    assert emulator.exchange_access(account.identity.principal_id) == (0, [])
    code, status, _ = exomi.run("status", output["id"])
    rollback = [a["action"] for a in status["audit"] if a["step"] == "rollback"]
    # The runbook is published at the same time as the grants: if it was, it is deleted again.
    assert [a for a in rollback if "runbook" not in a] == [
        "roll back: remove the entra-role Exchange Recipient Administrator"
    ]
    assert set(rollback) - {rollback[0]} <= {"roll back: delete runbook exomi-connect-exchange"}
    runbooks = emulator.automation().runbook.list_by_automation_account("ContosoRG", account.name)
    assert [r.name for r in runbooks] == []


def test_with_on_failure_keep_a_failed_request_leaves_what_it_granted(emulator, azurite, targets):
    keeping = ExomiRunner(emulator, azurite, policy=policy_for(emulator, on_failure="keep"))
    account = targets.automation_account()
    fail_app_role_grants(emulator)
    code, output, _ = keeping.run(
        "provision", "--target", account.id, "--organization", emulator.organization
    )
    assert code == 1 and "rolled back" not in output["message"]
    assert emulator.exchange_access(account.identity.principal_id) == (0, [RECIPIENT_ADMIN])


def test_rollback_keeps_what_another_target_of_the_identity_still_needs(emulator, exomi, targets):
    uai = targets.user_assigned_identity()
    first = targets.automation_account("ContosoAzAuto1", system=False, user_assigned=[uai.id])
    second = targets.automation_account("ContosoAzAuto2", system=False, user_assigned=[uai.id])
    code, output, stderr = exomi.run(
        "provision", "--target", first.id, "--identity", uai.id, "--organization", emulator.organization
    )
    assert code == 0, stderr
    # The second account's module import fails after its grants are made.
    emulator.ctl(
        "POST",
        "/automation/module-failures",
        {"module": "ExchangeOnlineManagement", "message": "An error occurred during module validation."},
    )
    code, output, _ = exomi.run(
        "provision",
        "--target",
        second.id,
        "--identity",
        uai.id,
        "--organization",
        emulator.organization,
        "--role",
        "Global Reader",
    )
    assert code == 1 and output["error"]["code"] == "OperationFailed"
    assert "rolled back: entra-role Global Reader" in output["message"]
    assert "kept: Exchange.ManageAsApp (also needed by" in output["message"]
    # The first account keeps all it asked for; nothing of the second's is left.
    assert emulator.exchange_access(uai.principal_id) == (1, [RECIPIENT_ADMIN])
    assert GLOBAL_READER not in emulator.exchange_access(uai.principal_id)[1]
    # And revoking the first takes the rest away: nothing is orphaned.
    code, output, _ = exomi.run("revoke", "--target", first.id)
    assert code == 0 and emulator.exchange_access(uai.principal_id) == (0, [])
