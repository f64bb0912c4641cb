"""Control API shortcut for the two grants an identity needs for Exchange Online, so that tests of VMs
and runbooks can prepare an identity without going through Graph:

  POST   /_control/grants {"principal_id", "app_role"?: "Exchange.ManageAsApp", "directory_role"?: "<role name>",
                           "backdate"?: true}
  DELETE /_control/grants {"principal_id", "app_role"?, "directory_role"?}

``app_role`` is an app role value of "Office 365 Exchange Online" (look-alikes such as
``Exchange.ManageAsAppV2`` are accepted too, and do not work, as in Azure). ``directory_role`` is a
built-in Entra role's display name. ``backdate`` dates the grants far enough back that they are past
the propagation delay; without it they take effect after ``timings.propagation_delay``.
"""

from __future__ import annotations

from aiohttp import web

from emulator import directory_data as dd
from emulator.control import ControlError, body_of, require
from emulator.http import json_response
from emulator.runtime import EmulatorRuntime
from emulator.tenant import Tenant

BACKDATE_SECONDS = 10 * 365 * 86400


def _app_role_id(tenant: Tenant, value: str) -> tuple[str, str]:
    exchange = tenant.exchange_sp
    if exchange is None:
        raise ControlError(409, "the tenant has no 'Office 365 Exchange Online' service principal")
    role = next((r for r in exchange.app_roles if r["value"].lower() == value.lower()), None)
    if role is None:
        known = ", ".join(r["value"] for r in exchange.app_roles)
        raise ControlError(400, f"unknown Exchange app role {value!r}; known: {known}")
    return exchange.id, role["id"]


def _directory_role_id(name: str) -> str:
    roles = {**dd.EXCHANGE_SUPPORTED_ROLES, **dd.OTHER_BUILT_IN_ROLES}
    role_id = next((v for k, v in roles.items() if k.lower() == name.lower()), None)
    if role_id is None:
        raise ControlError(400, f"unknown directory role {name!r}; known: {', '.join(roles)}")
    return role_id


def register_control(app: web.Application, runtime: EmulatorRuntime) -> None:
    routes = web.RouteTableDef()

    @routes.post("/_control/grants")
    async def grant(request: web.Request) -> web.Response:
        body = await body_of(request)
        (principal_id,) = require(body, "principal_id")
        tenant = runtime.tenant
        if tenant.principal(principal_id) is None:
            raise ControlError(404, f"no service principal {principal_id}")
        backdate = bool(body.get("backdate", False))
        result: dict[str, str] = {}
        if body.get("app_role"):
            resource_id, role_id = _app_role_id(tenant, str(body["app_role"]))
            assignment = tenant.add_app_role_assignment(principal_id, resource_id, role_id)
            if backdate:
                assignment.created_at -= BACKDATE_SECONDS
            result["app_role_assignment_id"] = assignment.id
        if body.get("directory_role"):
            role_id = _directory_role_id(str(body["directory_role"]))
            assignment = tenant.assign_directory_role(principal_id, role_id, backdate=backdate)
            result["directory_role_assignment_id"] = assignment.id
        if not result:
            raise ControlError(400, "give app_role and/or directory_role")
        return json_response({"principal_id": principal_id, **result}, 201)

    @routes.delete("/_control/grants")
    async def revoke(request: web.Request) -> web.Response:
        body = await body_of(request)
        (principal_id,) = require(body, "principal_id")
        tenant = runtime.tenant
        removed = 0
        if not body.get("app_role") and not body.get("directory_role"):
            # Neither named: remove every Exchange app role and every Entra role of the principal.
            exchange_id = tenant.exchange_sp.id if tenant.exchange_sp else None
            before = len(tenant.app_role_assignments) + len(tenant.directory_role_assignments)
            tenant.app_role_assignments = {
                k: a
                for k, a in tenant.app_role_assignments.items()
                if not (a.principal_id == principal_id and a.resource_id == exchange_id)
            }
            tenant.directory_role_assignments = {
                k: a for k, a in tenant.directory_role_assignments.items() if a.principal_id != principal_id
            }
            removed = before - len(tenant.app_role_assignments) - len(tenant.directory_role_assignments)
        if body.get("app_role"):
            resource_id, role_id = _app_role_id(tenant, str(body["app_role"]))
            keys = [
                k
                for k, a in tenant.app_role_assignments.items()
                if a.principal_id == principal_id
                and a.resource_id == resource_id
                and a.app_role_id == role_id
            ]
            for key in keys:
                del tenant.app_role_assignments[key]
            removed += len(keys)
        if body.get("directory_role"):
            role_id = _directory_role_id(str(body["directory_role"]))
            keys = [
                k
                for k, a in tenant.directory_role_assignments.items()
                if a.principal_id == principal_id and a.role_definition_id == role_id
            ]
            for key in keys:
                del tenant.directory_role_assignments[key]
            removed += len(keys)
        return json_response({"removed": removed})

    @routes.get("/_control/propagation")
    async def get_propagation(request: web.Request) -> web.Response:
        return json_response({"held": runtime.tenant.propagation_held_since is not None})

    @routes.put("/_control/propagation")
    async def put_propagation(request: web.Request) -> web.Response:
        """``{"held": true}``: grants made from now on do not reach Exchange; ``{"held": false}``: those
        made during the hold do at once."""
        body = await body_of(request)
        held = body.get("held")
        if not isinstance(held, bool) or set(body) != {"held"}:
            raise ControlError(400, 'the body must be {"held": true} or {"held": false}')
        runtime.tenant.hold_propagation(held)
        return json_response({"held": held})

    @routes.delete("/_control/exchange-tokens")
    async def expire_exchange_tokens(request: web.Request) -> web.Response:
        """Ends every cached Exchange token now: what waiting ``timings.token_cache`` would do."""
        return json_response({"expired": runtime.tenant.expire_tokens()})

    @routes.get("/_control/exchange-tokens")
    async def list_exchange_tokens(request: web.Request) -> web.Response:
        tokens = runtime.tenant.exchange_tokens
        return json_response(
            {
                "tokens": [
                    {
                        "principal_id": principal_id,
                        "issued_at": token.issued_at,
                        "has_exchange_app_role": token.has_exchange_app_role,
                        "role_template_ids": sorted(token.role_template_ids),
                    }
                    for principal_id, token in tokens.items()
                ]
            }
        )

    app.add_routes(routes)
