"""The control API (``/_control``): what tests, benchmarks and the demo use to look inside the tenant
and to steer it. It needs no token (the emulator only listens on 127.0.0.1). JSON in, JSON out.

Endpoints (see emulator/README.md for bodies):
  GET    /_control/info                    endpoints and well-known ids (the ready line, and more)
  GET    /_control/log[?since=N&service=arm|graph|identity]   the request log
  DELETE /_control/log
  GET    /_control/timings   PATCH /_control/timings {name: seconds}
  POST   /_control/reset {domain?, extra_domains?, subscription_count?, with_exchange_sp?, cloud?, app_permissions?}
  GET/POST/DELETE /_control/faults[/{id}]
  POST/DELETE /_control/rbac {principal_id, role, scope}
  POST/DELETE /_control/graph-permissions {principal_id, permission}
  POST/DELETE /_control/exchange-service-principal
  GET    /_control/principals            every service principal with its grants
  GET/PUT/DELETE /_control/ratelimits    token buckets (PUT {enabled, clock, scale, speed, limits, ...})
  POST   /_control/ratelimits/advance {seconds}   move the manual clock on
  POST   /_control/ratelimits/refill              fill every bucket
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from emulator import directory_data as dd
from emulator.arm.compute import VmOperation
from emulator.clouds import cloud_named
from emulator.http import json_response
from emulator.ratelimits import RateLimitConfig
from emulator.rbac import role_by_name
from emulator.runtime import EmulatorRuntime, TenantOptions


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def body_of(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ControlError(400, f"invalid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ControlError(400, "the body must be a JSON object")
    return body


def require(body: dict[str, Any], *names: str) -> list[Any]:
    missing = [n for n in names if body.get(n) in (None, "")]
    if missing:
        raise ControlError(400, f"missing field(s): {', '.join(missing)}")
    return [body[n] for n in names]


@web.middleware
async def control_errors(request: web.Request, handler):
    if not request.path.startswith("/_control"):
        return await handler(request)
    try:
        return await handler(request)
    except ControlError as error:
        return json_response({"error": str(error)}, error.status)
    except (ValueError, KeyError, TypeError) as error:
        return json_response({"error": str(error)}, 400)


def info(runtime: EmulatorRuntime) -> dict[str, Any]:
    tenant = runtime.tenant
    return {
        "arm_endpoint": runtime.base_url,
        "graph_endpoint": runtime.base_url + "/v1.0",
        "identity_endpoint": runtime.identity_url,
        "identity_header": runtime.identity_header,
        "imds_endpoint": runtime.identity_url.rsplit("/msi/token", 1)[0],
        "control_endpoint": runtime.base_url + "/_control",
        "tenant_id": tenant.tenant_id,
        "cloud": tenant.cloud.azure_cloud,
        "exchange_environment": tenant.cloud.exchange_environment,
        "arm_scope": tenant.cloud.arm_scope,
        "graph_scope": tenant.cloud.graph_scope,
        "subscription_id": tenant.default_subscription_id,
        "subscription_ids": [s.id for s in tenant.subscriptions.values()],
        "organization": tenant.domain,
        "accepted_domains": tenant.accepted_domains,
        "admin_client_id": tenant.admin.app_id,
        "admin_principal_id": tenant.admin.id,
        "app_client_id": tenant.app.app_id,
        "app_principal_id": tenant.app.id,
        "exchange_service_principal_id": tenant.exchange_sp.id if tenant.exchange_sp else None,
        "graph_service_principal_id": tenant.graph_sp.id,
        "app_arm_roles": [
            {"role": a.role.name, "scope": a.scope}
            for a in tenant.rbac.values()
            if a.principal_id == tenant.app.id
        ],
        "app_graph_permissions": sorted(tenant.graph_permissions(tenant.app.id)),
        "timings": runtime.timings.as_dict(),
    }


def register(app: web.Application, runtime: EmulatorRuntime) -> None:
    routes = web.RouteTableDef()

    @routes.get("/_control/info")
    async def get_info(request: web.Request) -> web.Response:
        return json_response(info(runtime))

    @routes.get("/_control/log")
    async def get_log(request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0"))
        service = request.query.get("service")
        entries = [
            {"index": i, **e.as_dict()}
            for i, e in enumerate(runtime.log.entries)
            if i >= since and (service is None or e.service == service)
        ]
        return json_response({"entries": entries, "next": len(runtime.log.entries)})

    @routes.delete("/_control/log")
    async def clear_log(request: web.Request) -> web.Response:
        runtime.log.clear()
        return json_response({"cleared": True})

    @routes.get("/_control/timings")
    async def get_timings(request: web.Request) -> web.Response:
        return json_response(runtime.timings.as_dict())

    @routes.patch("/_control/timings")
    async def patch_timings(request: web.Request) -> web.Response:
        runtime.timings.update(await body_of(request))
        return json_response(runtime.timings.as_dict())

    @routes.post("/_control/reset")
    async def reset(request: web.Request) -> web.Response:
        body = await body_of(request)
        allowed = {
            "domain",
            "extra_domains",
            "subscription_count",
            "with_exchange_sp",
            "cloud",
            "app_permissions",
        }
        if set(body) - allowed:
            raise ControlError(400, f"unknown field(s): {', '.join(sorted(set(body) - allowed))}")
        options = TenantOptions(
            domain=body.get("domain", TenantOptions.domain),
            extra_domains=tuple(body.get("extra_domains", TenantOptions.extra_domains)),
            subscription_count=int(body.get("subscription_count", TenantOptions.subscription_count)),
            with_exchange_sp=bool(body.get("with_exchange_sp", True)),
            cloud=str(body.get("cloud", TenantOptions.cloud)),
            app_permissions=bool(body.get("app_permissions", True)),
        )
        try:
            cloud_named(options.cloud)
        except ValueError as error:
            raise ControlError(400, str(error)) from None
        runtime.reset(options)
        return json_response(info(runtime))

    @routes.get("/_control/faults")
    async def list_faults(request: web.Request) -> web.Response:
        return json_response({"faults": [r.as_dict() for r in runtime.faults.rules]})

    @routes.post("/_control/faults")
    async def add_fault(request: web.Request) -> web.Response:
        rule = runtime.faults.add(await body_of(request))
        return json_response(rule.as_dict(), 201)

    @routes.delete("/_control/faults")
    async def clear_faults(request: web.Request) -> web.Response:
        runtime.faults.rules.clear()
        return json_response({"cleared": True})

    @routes.delete("/_control/faults/{fault_id}")
    async def delete_fault(request: web.Request) -> web.Response:
        before = len(runtime.faults.rules)
        runtime.faults.rules = [r for r in runtime.faults.rules if r.id != request.match_info["fault_id"]]
        if len(runtime.faults.rules) == before:
            raise ControlError(404, "no such fault")
        return json_response({"deleted": True})

    @routes.get("/_control/ratelimits")
    async def get_rate_limits(request: web.Request) -> web.Response:
        return json_response(runtime.rate_limits.state())

    @routes.put("/_control/ratelimits")
    async def put_rate_limits(request: web.Request) -> web.Response:
        # A whole new configuration (omitted fields take their defaults), every bucket full.
        runtime.rate_limits.configure(RateLimitConfig.from_dict(await body_of(request)))
        return json_response(runtime.rate_limits.state())

    @routes.delete("/_control/ratelimits")
    async def reset_rate_limits(request: web.Request) -> web.Response:
        runtime.rate_limits.reset()
        return json_response(runtime.rate_limits.state())

    @routes.post("/_control/ratelimits/advance")
    async def advance_rate_limits(request: web.Request) -> web.Response:
        (seconds,) = require(await body_of(request), "seconds")
        if not isinstance(seconds, int | float) or seconds < 0:
            raise ControlError(400, "seconds must be a number >= 0")
        runtime.rate_limits.advance(float(seconds))
        return json_response(runtime.rate_limits.state())

    @routes.post("/_control/ratelimits/refill")
    async def refill_rate_limits(request: web.Request) -> web.Response:
        runtime.rate_limits.refill()
        return json_response(runtime.rate_limits.state())

    @routes.post("/_control/rbac")
    async def add_rbac(request: web.Request) -> web.Response:
        principal_id, role, scope = require(await body_of(request), "principal_id", "role", "scope")
        role_by_name(role)
        assignment = runtime.tenant.assign_arm_role(principal_id, role, scope)
        return json_response(
            {"id": assignment.id, "principal_id": principal_id, "role": assignment.role.name, "scope": scope},
            201,
        )

    @routes.delete("/_control/rbac")
    async def delete_rbac(request: web.Request) -> web.Response:
        body = await body_of(request)
        (principal_id,) = require(body, "principal_id")
        removed = runtime.tenant.remove_arm_role(principal_id, body.get("role"), body.get("scope"))
        return json_response({"removed": removed})

    @routes.post("/_control/graph-permissions")
    async def grant_permission(request: web.Request) -> web.Response:
        principal_id, permission = require(await body_of(request), "principal_id", "permission")
        if permission not in dd.GRAPH_PERMISSIONS:
            raise ControlError(
                400, f"unknown permission {permission!r}; known: {', '.join(dd.GRAPH_PERMISSIONS)}"
            )
        runtime.tenant.grant_graph_permission(principal_id, permission)
        return json_response({"permissions": sorted(runtime.tenant.graph_permissions(principal_id))}, 201)

    @routes.delete("/_control/graph-permissions")
    async def revoke_permission(request: web.Request) -> web.Response:
        principal_id, permission = require(await body_of(request), "principal_id", "permission")
        runtime.tenant.revoke_graph_permission(principal_id, permission)
        return json_response({"permissions": sorted(runtime.tenant.graph_permissions(principal_id))})

    @routes.post("/_control/exchange-service-principal")
    async def add_exchange(request: web.Request) -> web.Response:
        sp = runtime.tenant.add_exchange_sp()
        return json_response({"id": sp.id, "appId": sp.app_id}, 201)

    @routes.delete("/_control/exchange-service-principal")
    async def remove_exchange(request: web.Request) -> web.Response:
        if runtime.tenant.exchange_sp is not None:
            runtime.tenant.delete_principal(runtime.tenant.exchange_sp.id)
        return json_response({"deleted": True})

    @routes.get("/_control/principals")
    async def list_principals(request: web.Request) -> web.Response:
        tenant = runtime.tenant
        result = []
        for sp in tenant.service_principals.values():
            result.append(
                {
                    "id": sp.id,
                    "appId": sp.app_id,
                    "displayName": sp.display_name,
                    "type": sp.sp_type,
                    "visible": sp.is_visible(),
                    "miResourceId": sp.mi_resource_id,
                    "appRoleAssignments": [
                        {"id": a.id, "appRoleId": a.app_role_id, "resourceId": a.resource_id}
                        for a in tenant.app_role_assignments.values()
                        if a.principal_id == sp.id
                    ],
                    "directoryRoles": [
                        {"id": a.id, "roleDefinitionId": a.role_definition_id}
                        for a in tenant.directory_roles_of(sp.id)
                    ],
                    "armRoles": [
                        {"role": a.role.name, "scope": a.scope}
                        for a in tenant.rbac.values()
                        if a.principal_id == sp.id
                    ],
                }
            )
        return json_response({"principals": result})

    @routes.get("/_control/run-commands")
    async def list_run_commands(request: web.Request) -> web.Response:
        """Every Run Command the tenant's VMs were sent (which command, on which VM, and whether it has
        run): what a test checks when the answer alone does not say which command ran."""
        result = [
            {
                "vmId": op.vm_id,
                "commandId": op.command_id,
                "done": op.result is not None or op.error is not None,
            }
            for op in runtime.tenant.operations.values()
            if isinstance(op, VmOperation) and op.kind == "runCommand"
        ]
        return json_response({"runCommands": result})

    app.add_routes(routes)
