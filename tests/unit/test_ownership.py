"""The ownership ledger (shared/ownership.py): which grants exomi made on an identity and which targets
need each; every sharing case, without storage."""

from __future__ import annotations

from shared.ownership import GrantKind, Ledger

APP, ENTRA = GrantKind.APP_ROLE, GrantKind.ENTRA_ROLE
A, B = (
    ("key-a", "/subscriptions/s/resourceGroups/rg/providers/x/a"),
    ("key-b", "/subscriptions/s/resourceGroups/rg/providers/x/b"),
)
MANAGE = "assignment-manage-as-app"
RECIPIENT, READER = "assignment-recipient-admin", "assignment-global-reader"


def record(ledger: Ledger, target, kind, assignment, name, request, made) -> Ledger:
    key, target_id = target
    return ledger.record(
        kind, assignment, name, target_key=key, target=target_id, request_id=request, made_by_exomi=made
    )


def shared() -> Ledger:
    """A asked for Exchange Recipient Administrator, B for Global Reader; they share the identity, and
    exomi granted Exchange.ManageAsApp for A (B found it in place, exomi's)."""
    ledger = Ledger(principal_id="00000000-0000-4000-8000-000000000001")
    ledger = record(ledger, A, APP, MANAGE, "Exchange.ManageAsApp", "r1", True)
    ledger = record(ledger, A, ENTRA, RECIPIENT, "Exchange Recipient Administrator", "r1", True)
    ledger = record(ledger, B, APP, MANAGE, "Exchange.ManageAsApp", "r2", False)
    return record(ledger, B, ENTRA, READER, "Global Reader", "r2", True)


def revoke(ledger: Ledger, target) -> tuple[Ledger, set[str]]:
    """What a revoke does: remove what only this target needs, release the rest."""
    key = target[0]
    removed = {g.assignment_id for g in ledger.removable_without(key)}
    for grant in ledger.needed_by(key):
        ledger = (
            ledger.forget(grant.assignment_id)
            if grant.assignment_id in removed
            else ledger.release(key, grant.assignment_id)
        )
    return ledger, removed


def test_a_grant_found_in_place_is_not_exomis():
    ledger = record(Ledger(principal_id="p"), A, ENTRA, "hand-made", "Global Reader", "r1", False)
    assert ledger.grants == () and not ledger.owns("hand-made")


def test_two_targets_one_identity_different_roles_revoked_in_either_order():
    for first, second in ((A, B), (B, A)):
        ledger, removed_first = revoke(shared(), first)
        assert MANAGE not in removed_first  # the other target still needs Exchange.ManageAsApp
        assert removed_first == ({RECIPIENT} if first is A else {READER})  # its own role goes at once
        ledger, removed_second = revoke(ledger, second)
        assert MANAGE in removed_second
        assert removed_first | removed_second == {MANAGE, RECIPIENT, READER}
        assert ledger.grants == ()  # nothing of exomi's is left on the identity


def test_the_same_role_for_two_targets_is_one_grant_kept_until_both_are_gone():
    ledger = record(
        Ledger(principal_id="p"), A, ENTRA, RECIPIENT, "Exchange Recipient Administrator", "r1", True
    )
    ledger = record(ledger, B, ENTRA, RECIPIENT, "Exchange Recipient Administrator", "r2", False)
    assert ledger.find(RECIPIENT).needed_by_others(A[0]) == [B[1]]
    ledger, removed = revoke(ledger, A)
    assert removed == set() and ledger.owns(RECIPIENT)
    ledger, removed = revoke(ledger, B)
    assert removed == {RECIPIENT}


def test_a_target_changing_role_gives_up_the_old_one_unless_another_target_needs_it():
    ledger = record(shared(), A, ENTRA, READER, "Global Reader", "r3", False)  # A now asks for B's role
    earlier = [g for g in ledger.needed_by(A[0], ENTRA) if g.assignment_id != READER]
    assert [g.assignment_id for g in earlier] == [RECIPIENT] and not earlier[0].needed_by_others(A[0])
    ledger = ledger.forget(RECIPIENT)  # removed: nobody else needs it
    assert sorted(ledger.find(READER).needed_by) == sorted([A[0], B[0]])
    # B changes away from Global Reader: A still needs it, so B only releases it.
    ledger = record(ledger, B, ENTRA, RECIPIENT, "Exchange Recipient Administrator", "r4", True)
    old = ledger.find(READER)
    assert old.needed_by_others(B[0]) == [A[1]]
    assert ledger.release(B[0], READER).find(READER).needed_by.keys() == {A[0]}


def test_rollback_releases_what_the_request_added_and_removes_what_nobody_else_needs():
    ledger = shared()
    added = ledger.added_by(B[0], "r2")
    assert {g.assignment_id for g in added} == {MANAGE, READER}
    to_remove = [g.assignment_id for g in added if not g.needed_by_others(B[0])]
    assert to_remove == [READER]  # A still needs Exchange.ManageAsApp
    assert ledger.added_by(A[0], "r2") == []  # another request's needs are not touched


def test_recording_again_keeps_the_first_need():
    ledger = record(shared(), A, APP, MANAGE, "Exchange.ManageAsApp", "r9", False)
    assert ledger.find(MANAGE).needed_by[A[0]].since_request == "r1"
    assert ledger == shared()
