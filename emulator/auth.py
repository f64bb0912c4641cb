"""Who is calling: bearer tokens for ARM and Graph, checked for signature, expiry and audience, with
each service's own 401 answers."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from emulator.http import ArmError, GraphError
from emulator.tenant import ServicePrincipal, Tenant
from emulator.tokens import TokenClaims, TokenIssuer


@dataclass(frozen=True)
class Caller:
    principal: ServicePrincipal
    claims: TokenClaims

    @property
    def id(self) -> str:
        return self.principal.id


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() != "bearer ":
        return None
    return header[7:].strip() or None


def authenticate_arm(request: web.Request, tenant: Tenant, issuer: TokenIssuer) -> Caller:
    challenge = {
        "WWW-Authenticate": f'Bearer authorization_uri="https://{tenant.cloud.login_host}/{tenant.tenant_id}", '
        'error="invalid_token", error_description="The authentication failed because of missing \'Authorization\' header."'
    }
    token = _bearer(request)
    if token is None:
        raise ArmError(
            401,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
            headers=challenge,
        )
    claims = issuer.verify(token)
    if claims is None:
        raise ArmError(401, "InvalidAuthenticationToken", "The access token is invalid.")
    audiences = tenant.cloud.arm_audiences
    if claims.audience not in audiences:
        allowed = ",".join(f"'{a}/','{a}'" for a in reversed(audiences))
        raise ArmError(
            401,
            "InvalidAuthenticationTokenAudience",
            f"The access token has been obtained for wrong audience or resource '{claims.audience}'. It should exactly match "
            f"with one of the allowed audiences {allowed}.",
        )
    principal = tenant.principal(claims.object_id)
    if principal is None:
        raise ArmError(
            401, "InvalidAuthenticationToken", "The access token is invalid: its principal no longer exists."
        )
    return Caller(principal, claims)


def authenticate_graph(request: web.Request, tenant: Tenant, issuer: TokenIssuer) -> Caller:
    token = _bearer(request)
    if token is None:
        raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
    claims = issuer.verify(token)
    if claims is None:
        raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.")
    if claims.audience not in tenant.cloud.graph_audiences:
        raise GraphError(
            401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience."
        )
    principal = tenant.principal(claims.object_id)
    if principal is None:
        raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.")
    return Caller(principal, claims)
