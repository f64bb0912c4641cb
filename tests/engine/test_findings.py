"""Extra privilege is never invisible: an identity that also holds Global Administrator, or the look-alike
Exchange.ManageAsAppV2, is reported by provision, diagnose and `exomi findings`, from live Graph state,
with a severity and a fix; exomi keeps grants it did not make."""

from __future__ import annotations

GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"


def test_global_administrator_and_a_look_alike_are_reported_everywhere(emulator, exomi, targets):
    account = targets.automation_account()
    principal_id = account.identity.principal_id
    # Somebody gave the identity more than it needs, by hand.
    emulator.grant_exchange_access(
        principal_id, app_role="Exchange.ManageAsAppV2", directory_role="Global Administrator"
    )

    code, output, stderr = exomi.run(
        "provision", "--target", account.id, "--organization", emulator.organization
    )
    assert code == 0 and output["status"] == "succeeded", stderr
    assert "2 finding(s)" in output["message"] and "[high]" in output["message"]

    code, diagnosis, _ = exomi.run("diagnose", "--target", account.id)
    assert code == 1  # a finding is a problem, even with every step OK
    assert all(step["verdict"] in ("ok", "n/a") for step in diagnosis["steps"])
    by_what = {f["what"]: f for f in diagnosis["findings"]}
    assert by_what["entra-role:Global Administrator"]["severity"] == "high"
    assert by_what["app-role:Exchange.ManageAsAppV2"]["severity"] == "medium"
    assert (
        "Remove-MgRoleManagementDirectoryRoleAssignment" in by_what["entra-role:Global Administrator"]["fix"]
    )

    code, findings, _ = exomi.run("findings")
    assert code == 1 and {(f["target"], f["what"]) for f in findings} == {
        (account.id, "entra-role:Global Administrator"),
        (account.id, "app-role:Exchange.ManageAsAppV2"),
    }
    code, high, _ = exomi.run("findings", "--severity", "high")
    assert [f["what"] for f in high] == ["entra-role:Global Administrator"]

    # Reported, never removed: exomi did not make these grants.
    app_roles, roles = emulator.exchange_access(principal_id)
    assert GLOBAL_ADMIN in roles
    code, output, _ = exomi.run("revoke", "--target", account.id)
    assert code == 0 and emulator.exchange_access(principal_id) == (0, [GLOBAL_ADMIN])


def test_with_remove_unmanaged_grants_a_provision_removes_extra_privilege_it_did_not_make(
    emulator, azurite, targets
):
    from tests.support.exomi import ExomiRunner, policy_for

    strict = ExomiRunner(emulator, azurite, policy=policy_for(emulator, remove_unmanaged_grants=True))
    account = targets.automation_account()
    principal_id = account.identity.principal_id
    emulator.grant_exchange_access(
        principal_id, app_role="Exchange.ManageAsAppV2", directory_role="Global Administrator"
    )
    code, output, stderr = strict.run(
        "provision", "--target", account.id, "--organization", emulator.organization
    )
    assert code == 0 and output["status"] == "succeeded", stderr
    assert "finding" not in output["message"]  # nothing extra is left to report
    assert emulator.exchange_access(principal_id) == (1, ["31392ffb-586c-42d1-9346-e59415a2cc4e"])
    look_alikes = [
        a for p in emulator.principals() if p["id"] == principal_id for a in p["appRoleAssignments"]
    ]
    assert len(look_alikes) == 1  # only Exchange.ManageAsApp: the look-alike is gone
    code, status, _ = strict.run("status", output["id"])
    removals = sorted(a["action"] for a in status["audit"] if a["step"] == "privileges")
    assert len(removals) == 2 and all("remove_unmanaged_grants" in a for a in removals)
