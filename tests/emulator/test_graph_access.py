"""Graph access rules through msgraph-sdk: /organization, which application permission each call
needs (403 for exomi's identity once it is revoked), wrong-audience tokens (401) and throttling (429
with Retry-After, retried by the SDK)."""

from __future__ import annotations

import uuid

import pytest
from msgraph.generated.models.app_role_assignment import AppRoleAssignment
from msgraph.generated.models.service_principal import ServicePrincipal
from msgraph.generated.models.unified_role_assignment import UnifiedRoleAssignment

from emulator import directory_data as dd
from tests.support.graph import graph_error


async def test_organization_lists_the_tenant_with_its_verified_domains(emulator):
    graph = emulator.graph(credential=emulator.app_credential())
    organizations = await graph.organization.get()
    assert [o.id for o in organizations.value] == [emulator.tenant_id]
    organization = organizations.value[0]
    assert organization.display_name == "Contoso"
    domains = {d.name: d for d in organization.verified_domains}
    assert set(domains) == {"contoso.onmicrosoft.com", "contoso.com"}
    initial = [d.name for d in organization.verified_domains if d.is_initial]
    assert initial == [emulator.organization] == ["contoso.onmicrosoft.com"]
    assert domains["contoso.com"].is_default and not domains["contoso.onmicrosoft.com"].is_default
    assert domains["contoso.onmicrosoft.com"].type == "Managed"
    assert "Email" in domains["contoso.onmicrosoft.com"].capabilities

    by_id = await graph.organization.by_organization_id(emulator.tenant_id.upper()).get()
    assert by_id.id == emulator.tenant_id
    error = await graph_error(graph.organization.by_organization_id(str(uuid.uuid4())).get())
    assert error.response_status_code == 404 and error.error.code == "Request_ResourceNotFound"


async def test_organization_reflects_a_reset_tenant_domains(emulator):
    emulator.reset(domain="fabrikam.onmicrosoft.com", extra_domains=[])
    graph = emulator.graph()
    organization = (await graph.organization.get()).value[0]
    assert organization.display_name == "Fabrikam"
    assert [(d.name, d.is_initial, d.is_default) for d in organization.verified_domains] == [
        ("fabrikam.onmicrosoft.com", True, True)
    ]


def _calls(emulator):
    """One msgraph-sdk call per permission exomi holds by default, each needing exactly that one."""
    exo = emulator.exchange_service_principal_id
    mi = emulator.seed_principal("grantee", visible=True)["id"]
    return {
        "Application.ReadWrite.All": [
            lambda g: g.service_principals.get(),
            lambda g: g.service_principals.by_service_principal_id(exo).get(),
            lambda g: g.service_principals.by_service_principal_id(exo).app_role_assigned_to.get(),
            lambda g: g.service_principals.post(ServicePrincipal(app_id=dd.EXCHANGE_APP_ID)),
        ],
        "AppRoleAssignment.ReadWrite.All": [
            lambda g: g.service_principals.by_service_principal_id(mi).app_role_assignments.post(
                AppRoleAssignment(
                    principal_id=uuid.UUID(mi),
                    resource_id=uuid.UUID(exo),
                    app_role_id=uuid.UUID(dd.EXCHANGE_MANAGE_AS_APP_ROLE_ID),
                )
            ),
        ],
        "RoleManagement.ReadWrite.Directory": [
            lambda g: g.role_management.directory.role_definitions.get(),
            lambda g: g.role_management.directory.role_assignments.get(),
            lambda g: g.role_management.directory.role_assignments.post(
                UnifiedRoleAssignment(
                    principal_id=mi,
                    role_definition_id=dd.EXCHANGE_SUPPORTED_ROLES["Exchange Administrator"],
                    directory_scope_id="/",
                )
            ),
        ],
        "Organization.Read.All": [lambda g: g.organization.get()],
    }


@pytest.mark.parametrize(
    "permission",
    [
        "Application.ReadWrite.All",
        "AppRoleAssignment.ReadWrite.All",
        "RoleManagement.ReadWrite.Directory",
        "Organization.Read.All",
    ],
)
async def test_exomi_identity_gets_403_once_a_permission_is_revoked(emulator, permission):
    calls = _calls(emulator)[permission]
    emulator.ctl(
        "DELETE", "/graph-permissions", {"principal_id": emulator.app_principal_id, "permission": permission}
    )
    graph = emulator.graph(credential=emulator.app_credential())
    for call in calls:
        error = await graph_error(call(graph))
        assert (error.response_status_code, error.error.code, error.error.message) == (
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        )
    # Nothing was written, and the admin (a Global Administrator without Graph permissions) still passes.
    assert [e for e in emulator.log(service="graph") if e["status"] != 403] == []
    admin = emulator.graph()
    for call in calls[:1]:
        await call(admin)


async def test_read_only_permissions_allow_reading_but_not_writing(emulator):
    app = emulator.app_principal_id
    for permission in dd.GRAPH_PERMISSIONS:
        emulator.ctl("DELETE", "/graph-permissions", {"principal_id": app, "permission": permission})
    for permission in ("Directory.Read.All", "RoleManagement.Read.Directory"):
        emulator.ctl("POST", "/graph-permissions", {"principal_id": app, "permission": permission})
    graph = emulator.graph(credential=emulator.app_credential())
    assert (await graph.service_principals.get()).value
    assert (await graph.organization.get()).value
    assert (await graph.role_management.directory.role_definitions.get()).value
    error = await graph_error(graph.service_principals.post(ServicePrincipal(app_id=dd.EXCHANGE_APP_ID)))
    assert error.response_status_code == 403
    error = await graph_error(
        graph.role_management.directory.role_assignments.post(
            UnifiedRoleAssignment(
                principal_id=app,
                role_definition_id=dd.EXCHANGE_SUPPORTED_ROLES["Global Reader"],
                directory_scope_id="/",
            )
        )
    )
    assert error.response_status_code == 403


async def test_token_for_another_audience_gets_graphs_401(emulator):
    arm_token = emulator.token("https://management.azure.com", client_id=emulator.admin_client_id)
    with emulator.http() as http:
        response = http.get(
            f"{emulator.graph_endpoint}/organization", headers={"Authorization": f"Bearer {arm_token}"}
        )
        missing = http.get(f"{emulator.graph_endpoint}/organization")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert response.json()["error"]["message"] == "Access token validation failure. Invalid audience."
    assert missing.status_code == 401


async def test_throttled_call_is_retried_after_retry_after(emulator):
    emulator.add_fault(path="^/v1.0/organization$", status=429, retry_after=1, count=1)
    graph = emulator.graph()
    organizations = await graph.organization.get()
    assert organizations.value[0].id == emulator.tenant_id
    calls = [(e["status"], e["fault"]) for e in emulator.log(service="graph")]
    assert calls == [(429, "status 429"), (200, None)]


async def test_unknown_query_options_segments_and_page_tokens_are_rejected(emulator):
    response = emulator.graph_http("GET", "/servicePrincipals", params={"$colour": "blue"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "BadRequest"
    response = emulator.graph_http("GET", "/servicePrincipals", params={"$skiptoken": "not-ours"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "Directory_ExpiredPageToken"
    response = emulator.graph_http("GET", "/servicePrincipals", params={"$skip": "2"})
    assert (
        response.status_code == 400
        and response.json()["error"]["message"] == "'$skip' is not supported by the service."
    )
    response = emulator.graph_http("GET", "/servicePrincipals", params={"$orderby": "displayName"})
    assert response.json()["error"] == {
        **response.json()["error"],
        "code": "Request_UnsupportedQuery",
        "message": "Sorting not supported for current query.",
    }
    response = emulator.graph_http("GET", "/servicePrincipals", params={"$search": '"displayName:office"'})
    assert response.status_code == 400 and response.json()["error"]["code"] == "Request_UnsupportedQuery"
    searched = emulator.graph_http(
        "GET",
        "/servicePrincipals",
        params={"$search": '"displayName:exchange"'},
        headers={"ConsistencyLevel": "eventual"},
    )
    assert [p["displayName"] for p in searched.json()["value"]] == ["Office 365 Exchange Online"]
    ordered = emulator.graph_http(
        "GET",
        "/servicePrincipals",
        params={"$orderby": "displayName desc", "$count": "true", "$select": "displayName"},
        headers={"ConsistencyLevel": "eventual"},
    )
    names = [p["displayName"] for p in ordered.json()["value"]]
    assert names == sorted(names, key=str.lower, reverse=True) and ordered.json()["@odata.count"] == len(
        names
    )
    assert ordered.json()["@odata.context"].endswith("$metadata#servicePrincipals(displayName)")
    response = emulator.graph_http("GET", "/servicePrincipals/not-a-guid")
    assert (
        response.status_code == 400
        and response.json()["error"]["message"] == "Invalid object identifier 'not-a-guid'."
    )
