"""What exomi's own identity needs, in one table: the Microsoft Graph application permissions (from
the calls of shared/azure/graph.py) and the Azure roles at each of the policy's scopes (from the calls of
shared/azure/arm.py). ``exomi bootstrap`` grants exactly this, ``exomi doctor`` and ``/api/health``
check it; docs/PERMISSIONS.md explains each line.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.azure import graph

# The Microsoft Graph first-party application (its service principal carries the permissions as app roles).
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"


@dataclass(frozen=True)
class GraphPermission:
    name: str
    app_role_id: str  # Microsoft Graph's app role id (the same in every tenant)
    why: str


# Microsoft Graph's own app role ids (learn.microsoft.com/graph/permissions-reference).
APPLICATION_READ = GraphPermission(
    graph.READ_PRINCIPALS,
    "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30",
    "read service principals: the target identity's and Office 365 Exchange Online's (its app role ids)",
)
APPLICATION_READ_WRITE = GraphPermission(
    graph.CREATE_PRINCIPALS,
    "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9",
    "create the Office 365 Exchange Online service principal in a tenant that lacks it (only then)",
)
APP_ROLE_ASSIGNMENT = GraphPermission(
    graph.GRANT_APP_ROLES,
    "06b708a9-e830-4db3-a914-8e69da51d44f",
    "grant and revoke Exchange.ManageAsApp",
)
ROLE_MANAGEMENT = GraphPermission(
    graph.ASSIGN_ROLES,
    "9e3f62cf-ca93-4989-b6ce-bf83c28f9fe8",
    "read, assign and remove the Entra role (Exchange Administrator, ...)",
)
# Only the (unused by any step) verified-domains read needs it: bootstrap does not grant it.
ORGANIZATION_READ = GraphPermission(
    graph.READ_ORGANIZATION,
    "498476ce-e0fe-48b0-b801-37ba7e2685c6",
    "not needed: no step reads the organization",
)
GRAPH_PERMISSIONS = (
    APPLICATION_READ,
    APPLICATION_READ_WRITE,
    APP_ROLE_ASSIGNMENT,
    ROLE_MANAGEMENT,
    ORGANIZATION_READ,
)
BY_APP_ROLE_ID = {p.app_role_id: p for p in GRAPH_PERMISSIONS}


def required_graph_permissions(exchange_sp_exists: bool) -> tuple[GraphPermission, ...]:
    """Exactly what exomi needs: Application.ReadWrite.All only while the Exchange Online service principal
    is missing (exomi's exchange-sp step creates it), Application.Read.All otherwise."""
    reading = APPLICATION_READ if exchange_sp_exists else APPLICATION_READ_WRITE
    return (reading, APP_ROLE_ASSIGNMENT, ROLE_MANAGEMENT)


def missing_for_health(held: set[str]) -> list[str]:
    """The permissions without which no provision can succeed (either reading permission will do: health
    does not look the Exchange Online principal up)."""
    missing = []
    if not held & {APPLICATION_READ.name, APPLICATION_READ_WRITE.name}:
        missing.append(APPLICATION_READ.name)
    missing += [p.name for p in (APP_ROLE_ASSIGNMENT, ROLE_MANAGEMENT) if p.name not in held]
    return missing


@dataclass(frozen=True)
class ArmRole:
    name: str
    role_definition_id: str  # the built-in role's GUID (the same in every tenant)
    why: str


# docs/PERMISSIONS.md "Azure RBAC": the built-in roles, at each of the policy's allowed_scopes.
BUILT_IN_ROLES = (
    ArmRole(
        "Reader",
        "acdd72a7-3385-48ef-bd42-f606fba81ae7",
        "read targets and their tags, role assignments and role definitions (target_roles rules)",
    ),
    ArmRole(
        "Automation Contributor",
        "f353d9bd-d4a6-484e-a77a-8050b599b867",
        "import modules, create runtime environments, publish runbooks, start verification jobs",
    ),
    ArmRole(
        "Virtual Machine Contributor",
        "9980e02c-c2be-4d73-94e8-173b1dc7cf3c",
        "Run Command on VMs (install modules, verify)",
    ),
)

# The actions exomi performs (shared/azure/arm.py), for a custom role instead of the built-in ones.
CUSTOM_ROLE_NAME = "exomi operator"
CUSTOM_ROLE_ACTIONS = (
    "Microsoft.Automation/automationAccounts/read",
    "Microsoft.Automation/automationAccounts/modules/*",
    "Microsoft.Automation/automationAccounts/runtimeEnvironments/*",
    "Microsoft.Automation/automationAccounts/runbooks/*",
    "Microsoft.Automation/automationAccounts/jobs/*",
    "Microsoft.Automation/automationAccounts/hybridRunbookWorkerGroups/read",
    "Microsoft.Automation/automationAccounts/hybridRunbookWorkerGroups/hybridRunbookWorkers/read",
    "Microsoft.Compute/virtualMachines/read",
    "Microsoft.Compute/virtualMachines/runCommand/action",
    "Microsoft.Compute/locations/operations/read",
    "Microsoft.ManagedIdentity/userAssignedIdentities/read",
    "Microsoft.Web/sites/read",
    "Microsoft.Authorization/roleAssignments/read",
    "Microsoft.Authorization/roleDefinitions/read",
    "Microsoft.Resources/subscriptions/resourceGroups/read",
)
