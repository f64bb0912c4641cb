"""Taking over what was done by hand, and cleaning up what outlived its resource: ``exomi adopt`` records
ownership of grants an admin made (changing nothing), so revoke later removes them; ``exomi revoke
--principal`` removes an orphaned identity's Exchange Online rights, and refuses for identities whose
resource still exists."""

from __future__ import annotations

from shared.constants import SUPPORTED_ROLES

RECIPIENT_ADMIN = "Exchange Recipient Administrator"


def test_adopting_hand_made_grants_changes_nothing_and_revoke_then_removes_them(emulator, exomi, targets):
    identity = targets.user_assigned_identity("ContosoMI-byhand")
    emulator.grant_exchange_access(identity.principal_id, directory_role=RECIPIENT_ADMIN)
    code, holders, _ = exomi.run("inventory")
    assert next(h for h in holders if h["principal_id"] == identity.principal_id)["status"] == "unmanaged"

    position = emulator.log_position()
    code, adopted, stderr = exomi.run(
        "adopt", "--target", identity.id, "--organization", emulator.organization
    )
    assert code == 0, stderr
    assert adopted["status"] == "succeeded"
    assert "Exchange.ManageAsApp" in adopted["message"] and RECIPIENT_ADMIN in adopted["message"]
    assert emulator.writes_since(position) == []  # ownership recorded, the tenant untouched
    code, holders, _ = exomi.run("inventory")
    holder = next(h for h in holders if h["principal_id"] == identity.principal_id)
    assert holder["status"] == "managed"
    assert [t.lower() for t in holder["targets"]] == [identity.id.lower()]  # ARM ids ignore case

    code, revoked, stderr = exomi.run("revoke", "--target", identity.id)
    assert code == 0, stderr
    assert emulator.exchange_access(identity.principal_id) == (0, [])
    code, report, _ = exomi.run("status", adopted["id"])
    adoption = [a for a in report["audit"] if a["step"] == "adopt"]  # on the record, with who asked
    assert len(adoption) == 1 and adoption[0]["requested_by"]


def test_adopt_refuses_when_there_is_nothing_to_adopt(emulator, exomi, targets):
    identity = targets.user_assigned_identity("ContosoMI-empty")
    code, answer, _ = exomi.run("adopt", "--target", identity.id, "--organization", emulator.organization)
    assert code == 2
    assert answer["error"]["code"] == "PrerequisiteMissing"
    assert "exomi provision" in answer["error"]["fix"]


def test_an_orphans_rights_are_removed_by_principal_and_audited(emulator, exomi, targets):
    missing = f"/subscriptions/{emulator.subscription_id}/resourceGroups/ContosoRG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/deleted-mi"
    orphan = emulator.ctl(
        "POST",
        "/principals",
        {"displayName": "deleted-mi", "type": "ManagedIdentity", "visible": True, "resourceId": missing},
    )
    emulator.grant_exchange_access(orphan["id"], directory_role="Exchange Administrator")

    code, record, stderr = exomi.run("revoke", "--principal", orphan["id"])
    assert code == 0, stderr
    assert record["status"] == "revoked"
    assert emulator.exchange_access(orphan["id"]) == (0, [])
    code, report, _ = exomi.run("status", record["id"])
    removed = [a["action"] for a in report["audit"] if a["step"] == "revoke-principal"]
    assert len(removed) == 2
    assert any(SUPPORTED_ROLES["Exchange Administrator"] in change for change in removed)
    code, holders, _ = exomi.run("inventory")
    assert orphan["id"] not in {h["principal_id"] for h in holders}


def test_revoke_by_principal_refuses_an_identity_whose_resource_exists(emulator, exomi, targets):
    account = targets.automation_account("ContosoAzAuto-live")
    code, _, stderr = exomi.run("provision", "--target", account.id, "--organization", emulator.organization)
    assert code == 0, stderr
    position = emulator.log_position()
    code, answer, _ = exomi.run("revoke", "--principal", account.identity.principal_id)
    assert code == 2
    assert answer["error"]["code"] == "Conflict"
    assert "revoke --target" in answer["error"]["message"]
    assert emulator.writes_since(position) == []
    manage_as_app, roles = emulator.exchange_access(account.identity.principal_id)
    assert manage_as_app == 1 and roles


def test_revoke_by_principal_rejects_a_malformed_id(exomi):
    code, answer, _ = exomi.run("revoke", "--principal", "not-a-guid")
    assert code == 2
    assert answer["error"]["field"] == "principal"
