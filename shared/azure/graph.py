"""Microsoft Graph adapter: the service-principal, app-role and Entra-role calls exomi makes.

Only validated GUIDs reach a ``$filter`` or a URL: every id argument is checked here again, so a
caller mistake cannot turn into an OData injection.

msgraph-sdk is the client (request builders, authentication, retries and throttling middleware, error
mapping), but the few shapes exomi reads are parsed from the answer's JSON here: msgraph's own model
parsing imports about 1,200 modules on its first answer (over a second of CPU, blocking the event
loop) and costs milliseconds per answer after that.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from kiota_abstractions.api_error import APIError
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_abstractions.default_query_parameters import QueryParameters
from kiota_abstractions.request_information import RequestInformation
from kiota_http.middleware.options import HeadersInspectionHandlerOption
from msgraph.generated.models.app_role_assignment import AppRoleAssignment
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.service_principal import ServicePrincipal
from msgraph.generated.models.unified_role_assignment import UnifiedRoleAssignment
from msgraph.generated.role_management.directory.role_assignments.role_assignments_request_builder import (
    RoleAssignmentsRequestBuilder,
)

from shared import constants
from shared.azure.clients import AzureClients
from shared.azure.failures import from_graph, graph_duplicate
from shared.azure.tenant_facts import TenantFacts
from shared.errors import InputError, UpstreamRejected

EXCHANGE_PRINCIPAL = "exchange-principal"
VERIFIED_DOMAINS = "verified-domains"

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


ERRORS: dict[str, Any] = {"XXX": ODataError}  # as msgraph's request builders map every error status
Json = dict[str, Any]


def _principal(sp: Json) -> PrincipalInfo:
    roles = tuple(
        AppRole(str(r.get("id")), r.get("value"), bool(r.get("isEnabled"))) for r in sp.get("appRoles") or []
    )
    names = tuple(str(n) for n in sp.get("alternativeNames") or [])
    return PrincipalInfo(
        str(sp.get("id")),
        str(sp.get("appId")),
        sp.get("displayName"),
        sp.get("servicePrincipalType"),
        roles,
        names,
    )


class GraphGateway:
    def __init__(self, clients: AzureClients, *, facts_ttl: float = 300.0) -> None:
        self.clients = clients
        self.facts = TenantFacts(ttl=facts_ttl)  # tenant-wide facts, shared by every request

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

    async def _send(
        self, operation: str, permission: str, request: RequestInformation, *, none_if_missing: bool = False
    ) -> Json | None:
        """Sends a request a builder made, through msgraph's adapter; the answer's JSON object."""
        adapter = self._graph.request_adapter
        # Expand the builder's URL template once: kiota expands it again on every read of ``url``
        # (three per call, a third of the call's CPU in bench/per_target_cpu.py).
        adapter.set_base_url_for_request_information(request)
        request.url = request.url
        content = await self._call(
            operation,
            permission,
            adapter.send_primitive_async(request, "bytes", ERRORS),
            none_if_missing=none_if_missing,
        )
        return json.loads(content) if content else None

    async def _every_page(
        self, operation: str, permission: str, builder: Any, first: RequestInformation
    ) -> list[Json]:
        """The items of a Graph list, following @odata.nextLink to its last page (``builder`` reads a
        next link with ``with_url``; ``first`` is the first page's request)."""
        items: list[Json] = []
        page = await self._send(operation, permission, first)
        while page is not None:
            items.extend(page.get("value") or [])
            link = page.get("@odata.nextLink")
            if not link:
                break
            page = await self._send(
                operation, permission, builder.with_url(link).to_get_request_information()
            )
        return items

    # ------------------------------------------------------------------ service principals

    async def get_principal(self, object_id: str) -> PrincipalInfo | None:
        """None when the principal does not exist (or is not replicated yet)."""
        object_id = guid(object_id, "principal_id")
        sp = await self._send(
            "read service principal",
            READ_PRINCIPALS,
            self._graph.service_principals.by_service_principal_id(object_id).to_get_request_information(),
            none_if_missing=True,
        )
        return None if sp is None else _principal(sp)

    async def find_principal_by_app_id(self, app_id: str) -> PrincipalInfo | None:
        app_id = guid(app_id, "app_id")
        sp = await self._send(
            "find service principal by appId",
            READ_PRINCIPALS,
            self._graph.service_principals_with_app_id(app_id).to_get_request_information(),
            none_if_missing=True,
        )
        return None if sp is None else _principal(sp)

    async def exchange_principal(self, *, fresh: bool = False) -> PrincipalInfo | None:
        """The "Office 365 Exchange Online" service principal (with its app roles), as read at most
        ``facts_ttl`` seconds ago (``fresh``: read it now)."""
        if fresh:
            self.facts.forget(EXCHANGE_PRINCIPAL)
        return await self.facts.get(
            EXCHANGE_PRINCIPAL, lambda: self.find_principal_by_app_id(constants.EXO_APP_ID)
        )

    async def create_principal(self, app_id: str) -> PrincipalInfo:
        app_id = guid(app_id, "app_id")
        if app_id == constants.EXO_APP_ID:
            self.facts.forget(EXCHANGE_PRINCIPAL)
        request = self._graph.service_principals.to_post_request_information(ServicePrincipal(app_id=app_id))
        try:
            content = await self._graph.request_adapter.send_primitive_async(request, "bytes", ERRORS)
        except APIError as exc:
            if graph_duplicate(exc, "create service principal"):
                existing = await self.find_principal_by_app_id(app_id)
                if existing is not None:
                    return existing
            raise from_graph(exc, "create service principal", CREATE_PRINCIPALS) from exc
        except Exception as exc:  # noqa: BLE001
            raise from_graph(exc, "create service principal", CREATE_PRINCIPALS) from exc
        return _principal(json.loads(content))

    # ------------------------------------------------------------------ app role assignments

    async def app_role_grants(self, principal_id: str) -> list[AppRoleGrant]:
        """Grants HELD by the principal (follows @odata.nextLink)."""
        principal_id = guid(principal_id, "principal_id")
        builder = self._graph.service_principals.by_service_principal_id(principal_id).app_role_assignments
        first = builder.to_get_request_information()
        items = await self._every_page("list app role assignments", READ_PRINCIPALS, builder, first)
        return [_app_role_grant(a) for a in items]

    async def app_role_holders(self, resource_id: str) -> list[AppRoleGrant]:
        """Grants MADE ON the resource principal (its appRoleAssignedTo), every page."""
        resource_id = guid(resource_id, "resource_id")
        builder = self._graph.service_principals.by_service_principal_id(resource_id).app_role_assigned_to
        first = builder.to_get_request_information()
        items = await self._every_page("list app role holders", READ_PRINCIPALS, builder, first)
        return [_app_role_grant(a) for a in items]

    async def role_holders(self, role_definition_ids: list[str]) -> list[RoleGrant]:
        """Every assignment of these directory roles, every page."""
        ids = ", ".join(f"'{guid(i, 'role_definition_id')}'" for i in role_definition_ids)
        query = RoleAssignmentsRequestBuilder.RoleAssignmentsRequestBuilderGetQueryParameters(
            filter=f"roleDefinitionId in ({ids})"
        )
        builder = self._graph.role_management.directory.role_assignments
        first = builder.to_get_request_information(RequestConfiguration(query_parameters=query))
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
        try:
            created = await self._send(
                "grant app role", GRANT_APP_ROLES, builder.to_post_request_information(body, config)
            )
        except UpstreamRejected:
            # The resource principal may be gone or not what was kept (404, 400): read it again next time.
            self.facts.forget(EXCHANGE_PRINCIPAL)
            raise
        return _app_role_grant(created or {}), _request_id(inspection)

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
        first = builder.to_get_request_information(RequestConfiguration(query_parameters=query))
        items = await self._every_page("list role assignments", READ_ROLES, builder, first)
        return [_role_grant(a) for a in items]

    async def assign_role(self, principal_id: str, role_definition_id: str) -> tuple[RoleGrant, str | None]:
        body = UnifiedRoleAssignment(
            principal_id=guid(principal_id, "principal_id"),
            role_definition_id=guid(role_definition_id, "role_definition_id"),
            directory_scope_id="/",
        )
        config, inspection = _inspecting()
        builder = self._graph.role_management.directory.role_assignments
        created = await self._send(
            "assign Entra role", ASSIGN_ROLES, builder.to_post_request_information(body, config)
        )
        return _role_grant(created or {}), _request_id(inspection)

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
        """The tenant's verified domains, as read at most ``facts_ttl`` seconds ago."""
        domains: list[str] = await self.facts.get(VERIFIED_DOMAINS, self._read_verified_domains)
        return list(domains)

    async def _read_verified_domains(self) -> list[str]:
        page = await self._send(
            "read organization", READ_ORGANIZATION, self._graph.organization.to_get_request_information()
        )
        domains: list[str] = []
        for org in (page or {}).get("value") or []:
            domains.extend(d["name"] for d in org.get("verifiedDomains") or [] if d.get("name"))
        return domains


async def _deleted(awaitable) -> bool:
    await awaitable
    return True


def _app_role_grant(a: Json) -> AppRoleGrant:
    return AppRoleGrant(
        str(a.get("id")), str(a.get("principalId")), str(a.get("resourceId")), str(a.get("appRoleId"))
    )


def _role_grant(a: Json) -> RoleGrant:
    return RoleGrant(
        str(a.get("id")),
        str(a.get("principalId")),
        str(a.get("roleDefinitionId")),
        str(a.get("directoryScopeId")),
    )


def _inspecting() -> tuple[RequestConfiguration[QueryParameters], HeadersInspectionHandlerOption]:
    """Request options under which kiota keeps the response headers (for Graph's request-id)."""
    option = HeadersInspectionHandlerOption(inspect_request_headers=False, inspect_response_headers=True)
    config: RequestConfiguration[QueryParameters] = RequestConfiguration()  # POSTs take no query
    config.options = [option]
    return config, option


def _request_id(option: HeadersInspectionHandlerOption) -> str | None:
    values = option.response_headers.get("request-id")
    return next(iter(values), None) if values else None
