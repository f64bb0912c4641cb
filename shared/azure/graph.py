"""Microsoft Graph adapter: the service-principal, app-role and Entra-role calls exomi makes.

Only validated GUIDs reach a ``$filter`` or a URL: every id argument is checked here again, so a
caller mistake cannot turn into an OData injection.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from kiota_abstractions.api_error import APIError
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_abstractions.default_query_parameters import QueryParameters
from kiota_http.middleware.options import HeadersInspectionHandlerOption
from msgraph.generated.models.app_role_assignment import AppRoleAssignment
from msgraph.generated.models.service_principal import ServicePrincipal
from msgraph.generated.models.unified_role_assignment import UnifiedRoleAssignment
from msgraph.generated.role_management.directory.role_assignments.role_assignments_request_builder import (
    RoleAssignmentsRequestBuilder,
)

from shared.azure.clients import AzureClients
from shared.azure.failures import from_graph, graph_error_code
from shared.errors import InputError

# The application permission a refused call needs, as docs/PERMISSIONS.md lists exomi's needs: a
# 403 names it. (Reading role assignments alone would need only RoleManagement.Read.Directory, but
# exomi needs ReadWrite for the step anyway; naming that saves a second round trip to the admin.)
READ_PRINCIPALS = "Application.Read.All"
CREATE_PRINCIPALS = "Application.ReadWrite.All"
GRANT_APP_ROLES = "AppRoleAssignment.ReadWrite.All"
READ_ROLES = "RoleManagement.ReadWrite.Directory"
ASSIGN_ROLES = "RoleManagement.ReadWrite.Directory"
READ_ORGANIZATION = "Organization.Read.All"


@dataclass(frozen=True)
class AppRole:
    id: str
    value: str | None
    enabled: bool


@dataclass(frozen=True)
class PrincipalInfo:
    id: str
    app_id: str
    display_name: str | None
    principal_type: str | None
    app_roles: tuple[AppRole, ...] = ()
    alternative_names: tuple[str, ...] = ()  # a managed identity's: "isExplicit=...", its ARM resource id


@dataclass(frozen=True)
class AppRoleGrant:
    id: str
    principal_id: str
    resource_id: str
    app_role_id: str


@dataclass(frozen=True)
class RoleGrant:
    id: str
    principal_id: str
    role_definition_id: str
    directory_scope_id: str


def guid(value: str, field: str) -> str:
    """The canonical lower-case form of a GUID, or InputError naming ``field``."""
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, AttributeError, TypeError):
        raise InputError(field, f"must be a GUID, got {value!r}") from None


def _principal(sp: ServicePrincipal) -> PrincipalInfo:
    roles = tuple(AppRole(str(r.id), r.value, bool(r.is_enabled)) for r in sp.app_roles or [])
    names = tuple(str(n) for n in sp.alternative_names or [])
    return PrincipalInfo(str(sp.id), str(sp.app_id), sp.display_name, sp.service_principal_type, roles, names)


class GraphGateway:
    def __init__(self, clients: AzureClients) -> None:
        self.clients = clients

    @property
    def _graph(self):
        return self.clients.graph()

    async def _call(self, operation: str, permission: str, awaitable, *, none_if_missing: bool = False):
        try:
            return await awaitable
        except APIError as exc:
            if none_if_missing and exc.response_status_code == 404:
                return None
            raise from_graph(exc, operation, permission) from exc
        except Exception as exc:  # noqa: BLE001 - every SDK failure becomes an exomi error
            raise from_graph(exc, operation, permission) from exc

    async def _every_page(self, operation: str, permission: str, builder: Any, first: Any) -> list[Any]:
        """The items of a Graph list, following @odata.nextLink to its last page (``builder`` reads a
        next link with ``with_url``; ``first`` is the awaitable first page)."""
        items: list[Any] = []
        page = await self._call(operation, permission, first)
        while page is not None:
            items.extend(page.value or [])
            if not page.odata_next_link:
                break
            page = await self._call(operation, permission, builder.with_url(page.odata_next_link).get())
        return items

    # ------------------------------------------------------------------ service principals

    async def get_principal(self, object_id: str) -> PrincipalInfo | None:
        """None when the principal does not exist (or is not replicated yet)."""
        object_id = guid(object_id, "principal_id")
        sp = await self._call(
            "read service principal",
            READ_PRINCIPALS,
            self._graph.service_principals.by_service_principal_id(object_id).get(),
            none_if_missing=True,
        )
        return None if sp is None else _principal(sp)

    async def find_principal_by_app_id(self, app_id: str) -> PrincipalInfo | None:
        app_id = guid(app_id, "app_id")
        sp = await self._call(
            "find service principal by appId",
            READ_PRINCIPALS,
            self._graph.service_principals_with_app_id(app_id).get(),
            none_if_missing=True,
        )
        return None if sp is None else _principal(sp)

    async def create_principal(self, app_id: str) -> PrincipalInfo:
        app_id = guid(app_id, "app_id")
        try:
            sp = await self._graph.service_principals.post(ServicePrincipal(app_id=app_id))
        except APIError as exc:
            if (
                exc.response_status_code == 409
                or graph_error_code(exc) == "Request_MultipleObjectsWithSameKeyValue"
            ):
                existing = await self.find_principal_by_app_id(app_id)
                if existing is not None:
                    return existing
            raise from_graph(exc, "create service principal", CREATE_PRINCIPALS) from exc
        except Exception as exc:  # noqa: BLE001
            raise from_graph(exc, "create service principal", CREATE_PRINCIPALS) from exc
        return _principal(sp)

    # ------------------------------------------------------------------ app role assignments

    async def app_role_grants(self, principal_id: str) -> list[AppRoleGrant]:
        """Grants HELD by the principal (follows @odata.nextLink)."""
        principal_id = guid(principal_id, "principal_id")
        builder = self._graph.service_principals.by_service_principal_id(principal_id).app_role_assignments
        items = await self._every_page("list app role assignments", READ_PRINCIPALS, builder, builder.get())
        return [_app_role_grant(a) for a in items]

    async def app_role_holders(self, resource_id: str) -> list[AppRoleGrant]:
        """Grants MADE ON the resource principal (its appRoleAssignedTo), every page."""
        resource_id = guid(resource_id, "resource_id")
        builder = self._graph.service_principals.by_service_principal_id(resource_id).app_role_assigned_to
        items = await self._every_page("list app role holders", READ_PRINCIPALS, builder, builder.get())
        return [_app_role_grant(a) for a in items]

    async def role_holders(self, role_definition_ids: list[str]) -> list[RoleGrant]:
        """Every assignment of these directory roles, every page."""
        ids = ", ".join(f"'{guid(i, 'role_definition_id')}'" for i in role_definition_ids)
        query = RoleAssignmentsRequestBuilder.RoleAssignmentsRequestBuilderGetQueryParameters(
            filter=f"roleDefinitionId in ({ids})"
        )
        builder = self._graph.role_management.directory.role_assignments
        first = builder.get(RequestConfiguration(query_parameters=query))
        return [
            _role_grant(a) for a in await self._every_page("list role holders", READ_ROLES, builder, first)
        ]

    async def grant_app_role(
        self, principal_id: str, resource_id: str, app_role_id: str
    ) -> tuple[AppRoleGrant, str | None]:
        """Creates the assignment; returns it with Graph's request-id (for the audit record)."""
        principal_id = guid(principal_id, "principal_id")
        body = AppRoleAssignment(
            principal_id=uuid.UUID(principal_id),
            resource_id=uuid.UUID(guid(resource_id, "resource_id")),
            app_role_id=uuid.UUID(guid(app_role_id, "app_role_id")),
        )
        builder = self._graph.service_principals.by_service_principal_id(principal_id).app_role_assignments
        config, inspection = _inspecting()
        created = await self._call(
            "grant app role", GRANT_APP_ROLES, builder.post(body, request_configuration=config)
        )
        grant = AppRoleGrant(
            str(created.id), str(created.principal_id), str(created.resource_id), str(created.app_role_id)
        )
        return grant, _request_id(inspection)

    async def revoke_app_role(self, principal_id: str, assignment_id: str) -> bool:
        principal_id = guid(principal_id, "principal_id")
        if not assignment_id.replace("-", "").replace("_", "").isalnum():
            raise InputError("assignment_id", "must be an app role assignment id (base64url)")
        builder = self._graph.service_principals.by_service_principal_id(
            principal_id
        ).app_role_assignments.by_app_role_assignment_id(assignment_id)
        result = await self._call(
            "revoke app role", GRANT_APP_ROLES, _deleted(builder.delete()), none_if_missing=True
        )
        return result is not None

    # ------------------------------------------------------------------ Entra roles

    async def role_grants(self, principal_id: str) -> list[RoleGrant]:
        principal_id = guid(principal_id, "principal_id")
        query = RoleAssignmentsRequestBuilder.RoleAssignmentsRequestBuilderGetQueryParameters(
            filter=f"principalId eq '{principal_id}'"
        )
        builder = self._graph.role_management.directory.role_assignments
        first = builder.get(RequestConfiguration(query_parameters=query))
        items = await self._every_page("list role assignments", READ_ROLES, builder, first)
        return [_role_grant(a) for a in items]

    async def assign_role(self, principal_id: str, role_definition_id: str) -> tuple[RoleGrant, str | None]:
        body = UnifiedRoleAssignment(
            principal_id=guid(principal_id, "principal_id"),
            role_definition_id=guid(role_definition_id, "role_definition_id"),
            directory_scope_id="/",
        )
        config, inspection = _inspecting()
        created = await self._call(
            "assign Entra role",
            ASSIGN_ROLES,
            self._graph.role_management.directory.role_assignments.post(body, request_configuration=config),
        )
        grant = RoleGrant(
            str(created.id),
            str(created.principal_id),
            str(created.role_definition_id),
            str(created.directory_scope_id),
        )
        return grant, _request_id(inspection)

    async def remove_role(self, assignment_id: str) -> bool:
        if not assignment_id.replace("-", "").replace("_", "").isalnum():
            raise InputError("assignment_id", "must be a role assignment id")
        builder = self._graph.role_management.directory.role_assignments.by_unified_role_assignment_id(
            assignment_id
        )
        result = await self._call(
            "remove Entra role", ASSIGN_ROLES, _deleted(builder.delete()), none_if_missing=True
        )
        return result is not None

    # ------------------------------------------------------------------ organization

    async def verified_domains(self) -> list[str]:
        page = await self._call("read organization", READ_ORGANIZATION, self._graph.organization.get())
        domains: list[str] = []
        for org in page.value or []:
            domains.extend(d.name for d in org.verified_domains or [] if d.name)
        return domains


async def _deleted(awaitable) -> bool:
    await awaitable
    return True


def _app_role_grant(a: AppRoleAssignment) -> AppRoleGrant:
    return AppRoleGrant(str(a.id), str(a.principal_id), str(a.resource_id), str(a.app_role_id))


def _role_grant(a: UnifiedRoleAssignment) -> RoleGrant:
    return RoleGrant(str(a.id), str(a.principal_id), str(a.role_definition_id), str(a.directory_scope_id))


def _inspecting() -> tuple[RequestConfiguration[QueryParameters], HeadersInspectionHandlerOption]:
    """Request options under which kiota keeps the response headers (for Graph's request-id)."""
    option = HeadersInspectionHandlerOption(inspect_request_headers=False, inspect_response_headers=True)
    config: RequestConfiguration[QueryParameters] = RequestConfiguration()  # POSTs take no query
    config.options = [option]
    return config, option


def _request_id(option: HeadersInspectionHandlerOption) -> str | None:
    values = option.response_headers.get("request-id")
    return next(iter(values), None) if values else None
