"""The managed-identity token endpoints: App Service / Functions (``IDENTITY_ENDPOINT`` +
``X-IDENTITY-HEADER``, what azure-identity uses inside a Function app) and IMDS (inside a VM).

Without a selector the token is for exomi's own identity (the Function app's system-assigned
identity). ``client_id`` / ``mi_res_id`` / ``object_id`` select the admin or a user-assigned identity.
"""

from __future__ import annotations

import time

from aiohttp import web

from emulator.clouds import foreign_resource, resource_not_found
from emulator.http import json_response
from emulator.runtime import EmulatorRuntime
from emulator.tenant import ServicePrincipal
from emulator.tokens import TOKEN_LIFETIME_SECONDS, TokenClaims, normalize_audience

NOT_FOUND = (
    "No User Assigned or Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId."
)


def _select_identity(runtime: EmulatorRuntime, query) -> ServicePrincipal | None:
    tenant = runtime.tenant
    client_id = query.get("client_id")
    resource_id = query.get("mi_res_id") or query.get("msi_res_id")
    object_id = query.get("object_id") or query.get("principal_id")
    if not (client_id or resource_id or object_id):
        return tenant.app
    candidates = [tenant.app, tenant.admin] + [
        sp
        for sp in tenant.service_principals.values()
        if sp.mi_resource_id and "/userassignedidentities/" in sp.mi_resource_id.lower()
    ]
    for sp in candidates:
        if client_id and sp.app_id.lower() == client_id.lower():
            return sp
        if object_id and sp.id.lower() == object_id.lower():
            return sp
        if resource_id and sp.mi_resource_id and sp.mi_resource_id.lower() == resource_id.lower():
            return sp
    return None


def _mint(runtime: EmulatorRuntime, principal: ServicePrincipal, resource: str) -> dict:
    now = int(time.time())
    claims = TokenClaims(
        audience=normalize_audience(resource),
        object_id=principal.id,
        app_id=principal.app_id,
        tenant_id=runtime.tenant.tenant_id,
        issued_at=now,
        expires_at=now + TOKEN_LIFETIME_SECONDS,
        mi_resource_id=principal.mi_resource_id,
    )
    return {
        "access_token": runtime.issuer.mint(claims),
        "expires_on": str(claims.expires_at),
        "expires_in": str(TOKEN_LIFETIME_SECONDS),
        "resource": resource,
        "token_type": "Bearer",
        "client_id": principal.app_id,
    }


def _unknown_resource(runtime: EmulatorRuntime, resource: str) -> str | None:
    """Entra's answer to a token for a resource its cloud has not (AADSTS500011), or None."""
    if not foreign_resource(runtime.tenant.cloud, normalize_audience(resource)):
        return None
    return resource_not_found(resource, runtime.tenant.tenant_id)


def _error(status: int, message: str) -> web.Response:
    return json_response({"statusCode": status, "message": message, "correlationId": None}, status)


def build_handlers(runtime: EmulatorRuntime):
    async def app_service_token(request: web.Request) -> web.Response:
        if request.headers.get("X-IDENTITY-HEADER") != runtime.identity_header:
            return _error(401, "The X-IDENTITY-HEADER header is missing or does not match IDENTITY_HEADER.")
        if not request.query.get("api-version"):
            return _error(400, "The api-version query parameter is required.")
        resource = request.query.get("resource")
        if not resource:
            return _error(400, "The resource query parameter is required.")
        principal = _select_identity(runtime, request.query)
        if principal is None:
            return _error(400, NOT_FOUND)
        if (unknown := _unknown_resource(runtime, resource)) is not None:
            return _error(400, unknown)
        return json_response(_mint(runtime, principal, resource))

    async def imds_token(request: web.Request) -> web.Response:
        if request.headers.get("Metadata", "").lower() != "true":
            return json_response(
                {"error": "invalid_request", "error_description": "Required metadata header not specified"},
                400,
            )
        resource = request.query.get("resource")
        if not resource:
            return json_response(
                {
                    "error": "invalid_request",
                    "error_description": "Required query variable 'resource' is missing",
                },
                400,
            )
        principal = _select_identity(runtime, request.query)
        if principal is None:
            return json_response({"error": "invalid_request", "error_description": "Identity not found"}, 400)
        if (unknown := _unknown_resource(runtime, resource)) is not None:
            return json_response({"error": "invalid_resource", "error_description": unknown}, 400)
        return json_response(_mint(runtime, principal, resource))

    return app_service_token, imds_token
