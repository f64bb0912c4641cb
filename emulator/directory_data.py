"""Well-known directory data: first-party apps, their app roles, and built-in Entra roles.

Ids are the real, tenant-independent ones (Microsoft Learn permissions and roles references).
"""

from __future__ import annotations

EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
MICROSOFT_TENANT_ID = "f8cdef31-a31e-4b4a-93e4-5f571e91255a"  # appOwnerOrganizationId of first-party apps

EXCHANGE_MANAGE_AS_APP_ROLE_ID = "dc50a0fb-09a3-484d-be87-e023b12c6440"


def _app_role(role_id: str, value: str, display_name: str, description: str) -> dict:
    return {
        "allowedMemberTypes": ["Application"],
        "description": description,
        "displayName": display_name,
        "id": role_id,
        "isEnabled": True,
        "origin": "Application",
        "value": value,
    }


# "Office 365 Exchange Online": the right role and the look-alikes that do not work. Only the
# Exchange.ManageAsApp id is real; the look-alikes' ids are stand-ins (they differ per source).
EXCHANGE_APP_ROLES = [
    _app_role(
        EXCHANGE_MANAGE_AS_APP_ROLE_ID,
        "Exchange.ManageAsApp",
        "Manage Exchange As Application",
        "Allows the app to manage the organization's Exchange environment without any user interaction. "
        "This includes mailboxes, groups, and other configuration objects.",
    ),
    _app_role(
        "6d1d3a14-2a4e-4b24-9a3b-4c3a5a2f0b61",
        "Exchange.ManageAsAppV2",
        "Manage Exchange As Application (V2)",
        "Allows the app to manage the organization's Exchange environment without any user interaction (V2).",
    ),
    _app_role(
        "455f54a4-6f1c-4c8c-8f22-2a6cf4a0c2d7",
        "Exchange.AdminAPI.ManageAsApp",
        "Manage Exchange admin API as application",
        "Allows the app to call the Exchange admin API without a signed-in user.",
    ),
    _app_role(
        "dc890d15-9560-4a4c-9b7f-a736ec74ec40",
        "full_access_as_app",
        "Use Exchange Web Services with full access to all mailboxes",
        "Allows the app to have full access via Exchange Web Services to all mailboxes without a signed-in user.",
    ),
]

# Microsoft Graph application permissions the emulator enforces (value -> app role id).
GRAPH_PERMISSIONS = {
    "Application.Read.All": "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30",
    "Application.ReadWrite.All": "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9",
    "AppRoleAssignment.ReadWrite.All": "06b708a9-e830-4db3-a914-8e69da51d44f",
    "Directory.Read.All": "7ab1d382-f21e-4acd-a863-ba3e13f7da61",
    "Directory.ReadWrite.All": "19dbc75e-c2e2-444c-a770-ec69d8559fc7",
    "Organization.Read.All": "498476ce-e0fe-48b0-b801-37ba7e2685c6",
    "RoleManagement.Read.Directory": "483bed4a-2ad3-4361-a73b-c83ccdbdc53c",
    "RoleManagement.ReadWrite.Directory": "9e3f62cf-ca93-4989-b6ce-bf83c28f9fe8",
}

GRAPH_APP_ROLES = [
    _app_role(role_id, value, value, f"Allows the app to use {value} without a signed-in user.")
    for value, role_id in GRAPH_PERMISSIONS.items()
]

# Built-in Entra roles: displayName -> template id (== id in roleDefinitions for built-ins).
EXCHANGE_SUPPORTED_ROLES = {
    "Compliance Administrator": "17315797-102d-40b4-93e0-432062caca18",
    "Exchange Administrator": "29232cdf-9323-42fd-ade2-1d097af3e4de",
    "Exchange Recipient Administrator": "31392ffb-586c-42d1-9346-e59415a2cc4e",
    "Global Administrator": "62e90394-69f5-4237-9190-012177145e10",
    "Global Reader": "f2ef992c-3afb-46b9-b7cf-a126ee74c451",
    "Helpdesk Administrator": "729827e3-9c14-49f7-bb1b-9608f156bbb8",
    "Security Administrator": "194ae4cb-b126-40b2-bd5b-6091b380977d",
    "Security Reader": "5d6b6bb7-de71-4623-b4af-96380a352509",
}
OTHER_BUILT_IN_ROLES = {
    "Application Administrator": "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3",
    "Cloud Application Administrator": "158c047a-c907-4556-b7ef-446551a6b5f7",
    "Directory Readers": "88d8e3e3-8f55-4a1e-953a-9b9898b8876b",
    "Privileged Role Administrator": "e8611ab8-c189-46e8-94e1-60213ab1f814",
    "SharePoint Administrator": "f28a1f50-f6e7-4571-818b-6a12f2af6b6c",
    "Teams Administrator": "69091246-20e8-4a56-aa4d-066075b2a7a8",
    "User Administrator": "fe930be7-5e62-47db-91af-98c3a49a38b1",
}
ROLE_DESCRIPTIONS = {
    "Compliance Administrator": "Can read and manage compliance configuration and reports in Microsoft Entra ID and Microsoft 365.",
    "Exchange Administrator": "Can manage all aspects of the Exchange product.",
    "Exchange Recipient Administrator": "Can create or update Exchange Online recipients within the Exchange Online organization.",
    "Global Administrator": "Can manage all aspects of Microsoft Entra ID and Microsoft services that use Microsoft Entra identities.",
    "Global Reader": "Can read everything that a Global Administrator can, but not update anything.",
    "Helpdesk Administrator": "Can reset passwords for non-administrators and Helpdesk Administrators.",
    "Security Administrator": "Can read security information and reports, and manage configuration in Microsoft Entra ID and Office 365.",
    "Security Reader": "Can read security information and reports in Microsoft Entra ID and Office 365.",
}


def built_in_role_definitions() -> list[dict]:
    """UnifiedRoleDefinition objects as Graph v1.0 returns them (built-ins: id == templateId)."""
    definitions = []
    for name, role_id in {**EXCHANGE_SUPPORTED_ROLES, **OTHER_BUILT_IN_ROLES}.items():
        definitions.append(
            {
                "id": role_id,
                "templateId": role_id,
                "displayName": name,
                "description": ROLE_DESCRIPTIONS.get(name, f"Built-in role {name}."),
                "isBuiltIn": True,
                "isEnabled": True,
                "version": "1",
                "resourceScopes": ["/"],
                "rolePermissions": [{"allowedResourceActions": [], "condition": None}],
                "inheritsPermissionsFrom": [],
            }
        )
    return definitions
