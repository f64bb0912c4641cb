"""Azure RBAC for the emulated ARM: built-in role definitions (real ids and action patterns) and the
check ARM runs before every call: a role assignment of the caller at or above the scope whose role
allows the action.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

_READ_BASICS = ["Microsoft.Authorization/*/read", "Microsoft.Resources/subscriptions/resourceGroups/read"]


@dataclass(frozen=True)
class RoleDefinition:
    id: str
    name: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...] = ()

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


BUILT_IN_ROLES: dict[str, RoleDefinition] = {
    role.name.lower(): role
    for role in [
        RoleDefinition("8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "Owner", ("*",)),
        RoleDefinition(
            "b24988ac-6180-42a0-ab88-20f7382dd24c",
            "Contributor",
            ("*",),
            (
                "Microsoft.Authorization/*/Delete",
                "Microsoft.Authorization/*/Write",
                "Microsoft.Authorization/elevateAccess/Action",
            ),
        ),
        RoleDefinition("acdd72a7-3385-48ef-bd42-f606fba81ae7", "Reader", ("*/read",)),
        RoleDefinition(
            "f353d9bd-d4a6-484e-a77a-8050b599b867",
            "Automation Contributor",
            ("Microsoft.Automation/automationAccounts/*", "Microsoft.Resources/deployments/*", *_READ_BASICS),
        ),
        RoleDefinition(
            "9980e02c-c2be-4d73-94e8-173b1dc7cf3c",
            "Virtual Machine Contributor",
            ("Microsoft.Compute/virtualMachines/*", "Microsoft.Compute/locations/*", *_READ_BASICS),
        ),
        RoleDefinition(
            "f1a07417-d97a-45cb-824c-7a7467783830",
            "Managed Identity Operator",
            (
                "Microsoft.ManagedIdentity/userAssignedIdentities/*/read",
                "Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action",
                *_READ_BASICS,
            ),
        ),
        RoleDefinition(
            "e40ec5ca-96e0-45a2-b4ff-59039f2c2b59",
            "Managed Identity Contributor",
            ("Microsoft.ManagedIdentity/userAssignedIdentities/*", *_READ_BASICS),
        ),
        RoleDefinition(
            "4a9ae827-6dc8-4573-8ac7-8239d42aa03f",
            "Tag Contributor",
            (
                "Microsoft.Resources/tags/*",
                "Microsoft.Resources/subscriptions/resourceGroups/resources/read",
                *_READ_BASICS,
            ),
        ),
    ]
}


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
