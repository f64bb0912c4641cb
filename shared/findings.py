"""Findings about an identity's privileges, from its live grants (Microsoft Graph), never from exomi's own
records alone: Global Administrator or any Entra role above the one the target asked for, look-alikes of
Exchange.ManageAsApp (they do not work), and other grants exomi did not make. Pure rules, no I/O.

Each finding has a severity and a fix. exomi reports them (diagnose, the request's result, the timer,
``GET /api/findings``) and never removes a grant it did not make.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from shared import constants
from shared.models import Role


class Severity(StrEnum):
    HIGH = "high"  # more privilege than Exchange needs, tenant-wide (Global Administrator)
    MEDIUM = "medium"  # more than the target asked for, or a grant that does not work
    LOW = "low"  # a grant exomi did not make, within what the target asked for


# How much each supported role may do, for "above the role asked for". Readers read; the Exchange
# roles manage recipients or all of Exchange; the security and compliance administrators reach beyond
# Exchange; Global Administrator is everything.
PRIVILEGE: dict[Role, int] = {
    Role.GLOBAL_READER: 10,
    Role.SECURITY_READER: 10,
    Role.EXCHANGE_RECIPIENT_ADMINISTRATOR: 40,
    Role.HELPDESK_ADMINISTRATOR: 50,
    Role.COMPLIANCE_ADMINISTRATOR: 60,
    Role.SECURITY_ADMINISTRATOR: 70,
    Role.EXCHANGE_ADMINISTRATOR: 80,
    Role.GLOBAL_ADMINISTRATOR: 100,
}
_BY_TEMPLATE = {role.template_id.lower(): role for role in Role}


class Finding(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    severity: Severity
    kind: str  # extra-privilege, look-alike, unmanaged
    what: str  # e.g. "entra-role:Global Administrator", "app-role:Exchange.ManageAsAppV2"
    detail: str
    fix: str
    assignment_id: str


class HeldEntraRole(BaseModel):
    model_config = ConfigDict(frozen=True)

    assignment_id: str
    role_definition_id: str
    directory_scope_id: str = "/"


class HeldAppRole(BaseModel):
    model_config = ConfigDict(frozen=True)

    assignment_id: str
    app_role_id: str
    value: str | None = None  # the app role's value on Office 365 Exchange Online, when known


def privilege_findings(
    *,
    principal_id: str,
    desired_role: Role | None,
    exchange_app_roles: list[HeldAppRole],
    entra_roles: list[HeldEntraRole],
    owned: set[str],
) -> list[Finding]:
    """What the identity holds beyond what the target needs. ``exchange_app_roles`` are its app role
    assignments on Office 365 Exchange Online; ``owned`` the assignment ids exomi made (the ledger)."""
    findings: list[Finding] = []
    for app_role in exchange_app_roles:
        if app_role.app_role_id.lower() == constants.EXCHANGE_MANAGE_AS_APP_ROLE_ID:
            continue
        name = app_role.value or app_role.app_role_id
        findings.append(
            Finding(
                severity=Severity.MEDIUM,
                kind="look-alike",
                what=f"app-role:{name}",
                detail=f"the identity holds the Exchange app role {name} (assignment {app_role.assignment_id}): "
                f"it is not {constants.EXCHANGE_MANAGE_AS_APP_VALUE} and does not let it connect; it only adds rights",
                fix=f"remove it: Remove-MgServicePrincipalAppRoleAssignment -ServicePrincipalId {principal_id} "
                f"-AppRoleAssignmentId {app_role.assignment_id}",
                assignment_id=app_role.assignment_id,
            )
        )
    wanted = PRIVILEGE.get(desired_role, 0) if desired_role else 0
    for held in entra_roles:
        role = _BY_TEMPLATE.get(held.role_definition_id.lower())
        if role is not None and role is desired_role:
            continue
        name = str(role) if role is not None else f"role {held.role_definition_id}"
        scope = "" if held.directory_scope_id == "/" else f", scope {held.directory_scope_id}"
        made = (
            "exomi assigned it for another target of this identity"
            if held.assignment_id in owned
            else "exomi did not assign it"
        )
        fix = f"remove it if nothing needs it: Remove-MgRoleManagementDirectoryRoleAssignment -UnifiedRoleAssignmentId {held.assignment_id}"
        asked = f"the {desired_role} it asked for" if desired_role else "the role it asked for"
        if role is Role.GLOBAL_ADMINISTRATOR:
            severity, kind, why = Severity.HIGH, "extra-privilege", f"far more than {asked}"
        elif role is None or PRIVILEGE[role] > wanted:
            severity, kind, why = Severity.MEDIUM, "extra-privilege", f"more than {asked}"
        elif held.assignment_id in owned:
            continue  # within what this target asked for, and exomi's own for another target
        else:
            severity, kind, why = Severity.LOW, "unmanaged", f"within {asked}"
        findings.append(
            Finding(
                severity=severity,
                kind=kind,
                what=f"entra-role:{name}",
                detail=f"the identity holds the Entra role {name} (assignment {held.assignment_id}{scope}), {why}; {made}",
                fix=fix,
                assignment_id=held.assignment_id,
            )
        )
    return findings
