"""Privilege findings from live grants (shared/findings.py): what is above the role asked for, what does
not work, what exomi did not make; each with a severity and a fix."""

from __future__ import annotations

from shared.findings import HeldAppRole, HeldEntraRole, Severity, privilege_findings
from shared.models import Role

MANAGE_AS_APP = "dc50a0fb-09a3-484d-be87-e023b12c6440"
PRINCIPAL = "0d2f6a10-1c4e-4a6b-9e7f-2b3c4d5e6f70"


def entra(assignment: str, role: Role | str) -> HeldEntraRole:
    template = role.template_id if isinstance(role, Role) else role
    return HeldEntraRole(assignment_id=assignment, role_definition_id=template)


def findings(desired: Role | None, *, app=(), roles=(), owned=()):
    return privilege_findings(
        principal_id=PRINCIPAL,
        desired_role=desired,
        exchange_app_roles=list(app),
        entra_roles=list(roles),
        owned=set(owned),
    )


def test_exactly_what_was_asked_for_is_no_finding():
    held = findings(
        Role.EXCHANGE_RECIPIENT_ADMINISTRATOR,
        app=[HeldAppRole(assignment_id="a1", app_role_id=MANAGE_AS_APP, value="Exchange.ManageAsApp")],
        roles=[entra("r1", Role.EXCHANGE_RECIPIENT_ADMINISTRATOR)],
        owned={"a1", "r1"},
    )
    assert held == []


def test_global_administrator_is_high_and_a_role_above_the_one_asked_for_is_medium():
    held = findings(
        Role.EXCHANGE_RECIPIENT_ADMINISTRATOR,
        roles=[entra("ga", Role.GLOBAL_ADMINISTRATOR), entra("ea", Role.EXCHANGE_ADMINISTRATOR)],
    )
    assert [(f.what, f.severity, f.kind) for f in held] == [
        ("entra-role:Global Administrator", Severity.HIGH, "extra-privilege"),
        ("entra-role:Exchange Administrator", Severity.MEDIUM, "extra-privilege"),
    ]
    assert all("Remove-MgRoleManagementDirectoryRoleAssignment" in f.fix for f in held)


def test_a_role_exomi_assigned_for_another_target_counts_only_when_it_is_above():
    shared = [entra("gr", Role.GLOBAL_READER), entra("ea", Role.EXCHANGE_ADMINISTRATOR)]
    held = findings(Role.EXCHANGE_RECIPIENT_ADMINISTRATOR, roles=shared, owned={"gr", "ea"})
    assert [f.what for f in held] == ["entra-role:Exchange Administrator"]
    assert "another target" in held[0].detail


def test_a_hand_made_role_below_the_one_asked_for_is_low_and_an_unknown_one_medium():
    held = findings(
        Role.EXCHANGE_ADMINISTRATOR,
        roles=[entra("gr", Role.GLOBAL_READER), entra("x", "e8611ab8-c189-46e8-94e1-60213ab1f814")],
    )
    assert [(f.kind, f.severity) for f in held] == [
        ("unmanaged", Severity.LOW),
        ("extra-privilege", Severity.MEDIUM),
    ]


def test_a_look_alike_of_exchange_manage_as_app_is_reported_with_its_fix():
    (finding,) = findings(
        Role.GLOBAL_READER,
        app=[
            HeldAppRole(
                assignment_id="v2",
                app_role_id="11111111-0000-4000-8000-000000000002",
                value="Exchange.ManageAsAppV2",
            )
        ],
    )
    assert (finding.kind, finding.what, finding.severity) == (
        "look-alike",
        "app-role:Exchange.ManageAsAppV2",
        Severity.MEDIUM,
    )
    assert f"-ServicePrincipalId {PRINCIPAL}" in finding.fix and "-AppRoleAssignmentId v2" in finding.fix
