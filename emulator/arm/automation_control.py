"""Control-API endpoints for steering what Automation jobs see (documented in emulator/README.md):

  GET/POST/DELETE /_control/automation/module-failures   make imports of a known-good module fail
  POST/DELETE     /_control/grants                       Exchange app role / Entra role of a principal

The grants endpoint stands in for the Graph calls (appRoleAssignedTo, roleAssignments) that exomi makes,
so Automation tests can prepare an identity directly; ``backdate`` makes the grants older than the
propagation delay.
"""

from __future__ import annotations

import time

from aiohttp import web

from emulator import directory_data as dd
from emulator.control import ControlError, body_of, require
from emulator.http import json_response
from emulator.runtime import EmulatorRuntime

BACKDATE_SECONDS = 10 * 365 * 86400


def register_control(app: web.Application, runtime: EmulatorRuntime) -> None:
    routes = web.RouteTableDef()

    @routes.get("/_control/automation/module-failures")
    async def list_failures(request: web.Request) -> web.Response:
        return json_response({"module_failures": runtime.tenant.module_import_failures})

    @routes.post("/_control/automation/module-failures")
    async def add_failure(request: web.Request) -> web.Response:
        body = await body_of(request)
        (module,) = require(body, "module")
        message = body.get("message") or (
            "An error occurred during module validation. When importing the module to an internal PowerShell "
            "session, it was not able to be loaded by PowerShell."
        )
        runtime.tenant.module_import_failures[str(module).lower()] = str(message)
        return json_response({"module_failures": runtime.tenant.module_import_failures}, 201)

    @routes.delete("/_control/automation/module-failures")
    async def clear_failures(request: web.Request) -> web.Response:
        module = request.query.get("module")
        failures = runtime.tenant.module_import_failures
        if module:
            failures.pop(module.lower(), None)
        else:
            failures.clear()
        return json_response({"module_failures": failures})

    @routes.post("/_control/grants")
    async def add_grants(request: web.Request) -> web.Response:
        body = await body_of(request)
        (principal_id,) = require(body, "principal_id")
        tenant = runtime.tenant
        if tenant.principal(principal_id) is None:
            raise ControlError(404, f"no service principal {principal_id}")
        backdate = bool(body.get("backdate"))
        result: dict = {"principal_id": principal_id}
        if body.get("app_role"):
            exchange = tenant.exchange_sp
            if exchange is None:
                raise ControlError(409, "the tenant has no 'Office 365 Exchange Online' service principal")
            role = next((r for r in exchange.app_roles if r["value"] == body["app_role"]), None)
            if role is None:
                values = ", ".join(r["value"] for r in exchange.app_roles)
                raise ControlError(400, f"unknown Exchange app role {body['app_role']!r}; known: {values}")
            assignment = tenant.add_app_role_assignment(principal_id, exchange.id, role["id"])
            if backdate:
                assignment.created_at = time.time() - BACKDATE_SECONDS
            result["app_role_assignment_id"] = assignment.id
        if body.get("directory_role"):
            roles = {**dd.EXCHANGE_SUPPORTED_ROLES, **dd.OTHER_BUILT_IN_ROLES}
            role_id = roles.get(body["directory_role"])
            if role_id is None:
                raise ControlError(
                    400, f"unknown directory role {body['directory_role']!r}; known: {', '.join(roles)}"
                )
            assignment = tenant.assign_directory_role(principal_id, role_id, backdate=backdate)
            result["directory_role_assignment_id"] = assignment.id
        return json_response(result, 201)

    @routes.delete("/_control/grants")
    async def remove_grants(request: web.Request) -> web.Response:
        (principal_id,) = require(await body_of(request), "principal_id")
        tenant = runtime.tenant
        exchange_id = tenant.exchange_sp.id if tenant.exchange_sp else None
        tenant.app_role_assignments = {
            k: a
            for k, a in tenant.app_role_assignments.items()
            if not (a.principal_id == principal_id and a.resource_id == exchange_id)
        }
        tenant.directory_role_assignments = {
            k: a for k, a in tenant.directory_role_assignments.items() if a.principal_id != principal_id
        }
        return json_response({"principal_id": principal_id})

    app.add_routes(routes)
