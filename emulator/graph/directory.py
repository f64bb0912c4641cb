"""Shared pieces of the emulated directory: the permissions each kind of call needs, object lookups
that honour replication (a new principal does not exist for Graph until its ``visible_at``), the
directory's error answers, and the JSON of service principals and app role assignments (used by
several resources: expansions, ``appRoleAssignments`` and ``appRoleAssignedTo``)."""

from __future__ import annotations

from emulator import directory_data as dd
from emulator.graph.router import GraphContext, is_guid
from emulator.graph.schema import EntityType
from emulator.http import GraphError
from emulator.tenant import AppRoleAssignment, ServicePrincipal, Tenant, iso

# Application permissions that allow each kind of call (any one suffices; Global Administrator passes).
READ_PRINCIPALS = {
    "Application.Read.All",
    "Application.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
}
CREATE_PRINCIPALS = {"Application.ReadWrite.All", "Directory.ReadWrite.All"}
WRITE_APP_ROLE_ASSIGNMENTS = {"AppRoleAssignment.ReadWrite.All"}
READ_ROLES = {"RoleManagement.Read.Directory", "RoleManagement.ReadWrite.Directory", "Directory.Read.All"}
WRITE_ROLES = {"RoleManagement.ReadWrite.Directory"}
READ_ORGANIZATION = {"Organization.Read.All", "Directory.Read.All"}

# Path segment of an object id (anything up to the next slash; validated by the handler).
ID = r"[^/()]+"


def not_found(object_id: str) -> GraphError:
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{object_id}' does not exist or one of its queried reference-property objects are not present.",
    )


def invalid_object_identifier(object_id: str) -> GraphError:
    return GraphError(400, "Request_BadRequest", f"Invalid object identifier '{object_id}'.")


def invalid_properties() -> GraphError:
    return GraphError(400, "Request_BadRequest", "One or more properties are invalid.")


def require_guid(object_id: str) -> str:
    if not is_guid(object_id):
        raise invalid_object_identifier(object_id)
    return object_id


def require_principal(ctx: GraphContext, object_id: str) -> ServicePrincipal:
    """The service principal with this object id as Graph sees it (404 while it replicates)."""
    sp = ctx.tenant.visible_principal(require_guid(object_id))
    if sp is None:
        raise not_found(object_id)
    return sp


def visible_principals(tenant: Tenant) -> list[ServicePrincipal]:
    return [sp for sp in tenant.service_principals.values() if sp.is_visible()]


# --------------------------------------------------------------------------------------------------
# Service principals

SERVICE_PRINCIPAL = EntityType(
    name="servicePrincipal",
    resource="ServicePrincipal",
    properties={
        "id": "Edm.String",
        "deletedDateTime": "Edm.DateTimeOffset",
        "accountEnabled": "Edm.Boolean",
        "addIns": "Collection(microsoft.graph.addIn)",
        "alternativeNames": "Collection(Edm.String)",
        "appDescription": "Edm.String",
        "appDisplayName": "Edm.String",
        "appId": "Edm.String",
        "applicationTemplateId": "Edm.String",
        "appOwnerOrganizationId": "Edm.Guid",
        "appRoleAssignmentRequired": "Edm.Boolean",
        "appRoles": "Collection(microsoft.graph.appRole)",
        "customSecurityAttributes": "microsoft.graph.customSecurityAttributeValue",
        "description": "Edm.String",
        "disabledByMicrosoftStatus": "Edm.String",
        "displayName": "Edm.String",
        "homepage": "Edm.String",
        "info": "microsoft.graph.informationalUrl",
        "keyCredentials": "Collection(microsoft.graph.keyCredential)",
        "loginUrl": "Edm.String",
        "logoutUrl": "Edm.String",
        "notes": "Edm.String",
        "notificationEmailAddresses": "Collection(Edm.String)",
        "oauth2PermissionScopes": "Collection(microsoft.graph.permissionScope)",
        "passwordCredentials": "Collection(microsoft.graph.passwordCredential)",
        "preferredSingleSignOnMode": "Edm.String",
        "preferredTokenSigningKeyThumbprint": "Edm.String",
        "replyUrls": "Collection(Edm.String)",
        "resourceSpecificApplicationPermissions": "Collection(microsoft.graph.resourceSpecificPermission)",
        "samlSingleSignOnSettings": "microsoft.graph.samlSingleSignOnSettings",
        "servicePrincipalNames": "Collection(Edm.String)",
        "servicePrincipalType": "Edm.String",
        "signInAudience": "Edm.String",
        "tags": "Collection(Edm.String)",
        "tokenEncryptionKeyId": "Edm.Guid",
        "verifiedPublisher": "microsoft.graph.verifiedPublisher",
    },
    navigations=frozenset(
        {
            "appManagementPolicies",
            "appRoleAssignedTo",
            "appRoleAssignments",
            "claimsMappingPolicies",
            "createdObjects",
            "delegatedPermissionClassifications",
            "endpoints",
            "federatedIdentityCredentials",
            "homeRealmDiscoveryPolicies",
            "memberOf",
            "oauth2PermissionGrants",
            "ownedObjects",
            "owners",
            "remoteDesktopSecurityConfiguration",
            "synchronization",
            "tokenIssuancePolicies",
            "tokenLifetimePolicies",
            "transitiveMemberOf",
        }
    ),
    filters={
        "id": frozenset({"eq", "in"}),
        "appId": frozenset({"eq", "in"}),
        "displayName": frozenset({"eq", "in", "startsWith"}),
        "servicePrincipalType": frozenset({"eq", "in"}),
        "accountEnabled": frozenset({"eq", "in"}),
        "appOwnerOrganizationId": frozenset({"eq", "in"}),
        "alternativeNames": frozenset({"any"}),
        "servicePrincipalNames": frozenset({"any"}),
        "tags": frozenset({"any"}),
    },
    advanced_filters=frozenset(
        {"id", "appId", "displayName", "servicePrincipalType", "accountEnabled", "appOwnerOrganizationId"}
    ),
    orderby=frozenset({"displayName"}),
    search=frozenset({"displayName", "description"}),
)


def service_principal_json(sp: ServicePrincipal) -> dict:
    """A servicePrincipal as Graph v1.0 returns it (managed identities: see azure-wire D.1)."""
    managed = sp.sp_type == "ManagedIdentity"
    return {
        "id": sp.id,
        "deletedDateTime": None,
        "accountEnabled": True,
        "alternativeNames": list(sp.alternative_names),
        "appDisplayName": None if managed else sp.display_name,
        "appDescription": None,
        "appId": sp.app_id,
        "applicationTemplateId": None,
        "appOwnerOrganizationId": sp.app_owner_organization_id,
        "appRoleAssignmentRequired": False,
        "description": None,
        "disabledByMicrosoftStatus": None,
        "displayName": sp.display_name,
        "homepage": None,
        "loginUrl": None,
        "logoutUrl": None,
        "notes": None,
        "notificationEmailAddresses": [],
        "preferredSingleSignOnMode": None,
        "preferredTokenSigningKeyThumbprint": None,
        "replyUrls": [],
        "servicePrincipalNames": list(sp.service_principal_names),
        "servicePrincipalType": sp.sp_type,
        "signInAudience": None if managed else "AzureADMultipleOrgs",
        "tags": [],
        "tokenEncryptionKeyId": None,
        "samlSingleSignOnSettings": None,
        "addIns": [],
        "appRoles": [dict(role) for role in sp.app_roles],
        "info": {
            "logoUrl": None,
            "marketingUrl": None,
            "privacyStatementUrl": None,
            "supportUrl": None,
            "termsOfServiceUrl": None,
        },
        "keyCredentials": [],
        "oauth2PermissionScopes": [],
        "passwordCredentials": [],
        "resourceSpecificApplicationPermissions": [],
        "verifiedPublisher": {"displayName": None, "verifiedPublisherId": None, "addedDateTime": None},
    }


# --------------------------------------------------------------------------------------------------
# App role assignments

APP_ROLE_ASSIGNMENT = EntityType(
    name="appRoleAssignment",
    resource="AppRoleAssignment",
    properties={
        "id": "Edm.String",
        "deletedDateTime": "Edm.DateTimeOffset",
        "appRoleId": "Edm.Guid",
        "createdDateTime": "Edm.DateTimeOffset",
        "principalDisplayName": "Edm.String",
        "principalId": "Edm.Guid",
        "principalType": "Edm.String",
        "resourceDisplayName": "Edm.String",
        "resourceId": "Edm.Guid",
    },
    filters={"resourceId": frozenset({"eq", "in"}), "appRoleId": frozenset({"eq", "in"})},
)


def app_role_assignment_json(assignment: AppRoleAssignment) -> dict:
    return {
        "id": assignment.id,
        "deletedDateTime": None,
        "appRoleId": assignment.app_role_id,
        "createdDateTime": iso(assignment.created_at),
        "principalDisplayName": assignment.principal_display_name,
        "principalId": assignment.principal_id,
        "principalType": assignment.principal_type,
        "resourceDisplayName": assignment.resource_display_name,
        "resourceId": assignment.resource_id,
    }


def assignments_held_by(tenant: Tenant, principal_id: str) -> list[AppRoleAssignment]:
    """Grants a principal holds, on resources Graph can see."""
    return [
        a
        for a in tenant.app_role_assignments.values()
        if a.principal_id == principal_id and tenant.visible_principal(a.resource_id)
    ]


def assignments_granted_on(tenant: Tenant, resource_id: str) -> list[AppRoleAssignment]:
    """Grants on a resource, to principals Graph can see."""
    return [
        a
        for a in tenant.app_role_assignments.values()
        if a.resource_id == resource_id and tenant.visible_principal(a.principal_id)
    ]


def service_principal_navigation(tenant: Tenant, item: dict, navigation: str) -> list[dict]:
    """``$expand`` on a service principal: its grants, or an empty collection for relationships the
    emulated tenant never populates (owners, memberOf, policies, ...)."""
    if navigation == "appRoleAssignments":
        return [app_role_assignment_json(a) for a in assignments_held_by(tenant, item["id"])]
    if navigation == "appRoleAssignedTo":
        return [app_role_assignment_json(a) for a in assignments_granted_on(tenant, item["id"])]
    return []


def is_exchange_app(app_id: str) -> bool:
    return app_id.lower() == dd.EXCHANGE_APP_ID
