"""Azure RBAC for the emulated ARM: built-in role definitions (real ids and action patterns) and the
check ARM runs before every call: a role assignment of the caller at or above the scope whose role
allows the action.
"""

from __future__ import annotations

import fnmatch
import uuid
from dataclasses import dataclass

_READ_BASICS = ["Microsoft.Authorization/*/read", "Microsoft.Resources/subscriptions/resourceGroups/read"]


@dataclass(frozen=True)
class RoleDefinition:
    id: str
    name: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...] = ()
    description: str = ""  # the built-in role's description (Microsoft.Authorization/roleDefinitions)

    def allows(self, action: str) -> bool:
        action = action.lower()
        return any(_matches(action, p) for p in self.actions) and not any(
            _matches(action, p) for p in self.not_actions
        )


def _matches(action: str, pattern: str) -> bool:
    """Azure's wildcard: ``*`` matches any run of characters, and ``a/*/b`` also matches ``a/b``."""
    pattern = pattern.lower()
    return fnmatch.fnmatchcase(action, pattern) or (
        "/*/" in pattern and fnmatch.fnmatchcase(action, pattern.replace("/*/", "/"))
    )


# Descriptions and the Owner, Contributor, Reader, User Access Administrator and Role Based Access
# Control Administrator action lists are the real ones (MicrosoftDocs/azure-docs
# articles/role-based-access-control/built-in-roles/*.md). The other roles carry the subset of their
# real actions that concerns emulated providers (plus the read basics every one of them has).
BUILT_IN_ROLES: dict[str, RoleDefinition] = {
    role.name.lower(): role
    for role in [
        RoleDefinition(
            "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
            "Owner",
            ("*",),
            description="Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
        ),
        RoleDefinition(
            "b24988ac-6180-42a0-ab88-20f7382dd24c",
            "Contributor",
            ("*",),
            (
                "Microsoft.Authorization/*/Delete",
                "Microsoft.Authorization/*/Write",
                "Microsoft.Authorization/elevateAccess/Action",
                "Microsoft.Blueprint/blueprintAssignments/write",
                "Microsoft.Blueprint/blueprintAssignments/delete",
                "Microsoft.Compute/galleries/share/action",
                "Microsoft.Purview/consents/write",
                "Microsoft.Purview/consents/delete",
                "Microsoft.Resources/deploymentStacks/manageDenySetting/action",
                "Microsoft.Subscription/cancel/action",
                "Microsoft.Subscription/enable/action",
            ),
            description="Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC, "
            "manage assignments in Azure Blueprints, or share image galleries.",
        ),
        RoleDefinition(
            "acdd72a7-3385-48ef-bd42-f606fba81ae7",
            "Reader",
            ("*/read",),
            description="View all resources, but does not allow you to make any changes.",
        ),
        RoleDefinition(
            "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
            "User Access Administrator",
            ("*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"),
            description="Lets you manage user access to Azure resources.",
        ),
        RoleDefinition(
            "f58310d9-a9f6-439a-9e8d-f62e7b41a168",
            "Role Based Access Control Administrator",
            (
                "Microsoft.Authorization/roleAssignments/write",
                "Microsoft.Authorization/roleAssignments/delete",
                "*/read",
                "Microsoft.Support/*",
            ),
            description="Manage access to Azure resources by assigning roles using Azure RBAC. This role does not allow "
            "you to manage access using other ways, such as Azure Policy.",
        ),
        RoleDefinition(
            "f353d9bd-d4a6-484e-a77a-8050b599b867",
            "Automation Contributor",
            ("Microsoft.Automation/automationAccounts/*", "Microsoft.Resources/deployments/*", *_READ_BASICS),
            description="Manage azure automation resources and other resources using azure automation.",
        ),
        RoleDefinition(
            "9980e02c-c2be-4d73-94e8-173b1dc7cf3c",
            "Virtual Machine Contributor",
            (
                "Microsoft.Compute/virtualMachines/*",
                "Microsoft.Compute/virtualMachineScaleSets/*",
                "Microsoft.Compute/locations/*",
                *_READ_BASICS,
            ),
            description="Create and manage virtual machines, manage disks, install and run software, reset password of "
            "the root user of the virtual machine using VM extensions, and manage local user accounts using VM "
            "extensions. This role does not grant you management access to the virtual network or storage account "
            "the virtual machines are connected to. This role does not allow you to assign roles in Azure RBAC.",
        ),
        RoleDefinition(
            "f1a07417-d97a-45cb-824c-7a7467783830",
            "Managed Identity Operator",
            (
                "Microsoft.ManagedIdentity/userAssignedIdentities/*/read",
                "Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action",
                *_READ_BASICS,
            ),
            description="Read and Assign User Assigned Identity",
        ),
        RoleDefinition(
            "e40ec5ca-96e0-45a2-b4ff-59039f2c2b59",
            "Managed Identity Contributor",
            ("Microsoft.ManagedIdentity/userAssignedIdentities/*", *_READ_BASICS),
            description="Create, Read, Update, and Delete User Assigned Identity",
        ),
        RoleDefinition(
            "4a9ae827-6dc8-4573-8ac7-8239d42aa03f",
            "Tag Contributor",
            (
                "Microsoft.Resources/tags/*",
                "Microsoft.Resources/subscriptions/resourceGroups/resources/read",
                *_READ_BASICS,
            ),
            description="Lets you manage tags on entities, without providing access to the entities themselves.",
        ),
    ]
}

ROLES_BY_ID: dict[str, RoleDefinition] = {role.id: role for role in BUILT_IN_ROLES.values()}


def role_by_id(role_id: str) -> RoleDefinition | None:
    """The built-in role whose GUID is ``role_id`` (any case, with or without dashes), or None."""
    try:
        return ROLES_BY_ID.get(str(uuid.UUID(role_id)))
    except ValueError:
        return None


def role_by_name(name: str) -> RoleDefinition:
    try:
        return BUILT_IN_ROLES[name.lower()]
    except KeyError:
        raise ValueError(
            f"unknown role {name!r}; known: {', '.join(r.name for r in BUILT_IN_ROLES.values())}"
        ) from None


def scope_contains(outer: str, inner: str) -> bool:
    """True if an assignment at ``outer`` applies to ``inner`` (same scope or an ancestor), case-insensitively."""
    outer_l = outer.rstrip("/").lower()
    inner_l = inner.rstrip("/").lower()
    return outer_l in ("", "/") or inner_l == outer_l or inner_l.startswith(outer_l + "/")
