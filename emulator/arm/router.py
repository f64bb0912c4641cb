"""Routing for the emulated Azure Resource Manager.

Each resource provider module registers routes with a path template (literal segments match
case-insensitively, ``{name}`` captures a segment, a leading ``{scope*}`` captures any resource id),
the RBAC action it needs and the api-versions it accepts. The router runs ARM's checks in ARM's order
(token, api-version, subscription, api-version support, authorization), calls the handler, and
publishes a ``Microsoft.Resources.*`` operation for every successful write, delete or action.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import quote, unquote, urlencode

from aiohttp import web

from emulator.arm import api_versions
from emulator.auth import Caller, authenticate_arm
from emulator.http import ArmError, read_json
from emulator.runtime import EmulatorRuntime
from emulator.tenant import ArmOperation, Tenant
from emulator.throttling import arm_check

Handler = Callable[["ArmContext"], Awaitable[web.StreamResponse]]
RATE_LIMIT_HEADERS = "arm_rate_limit_headers"  # request key: the x-ms-ratelimit-remaining-* of the answer


@dataclass
class ArmContext:
    request: web.Request
    runtime: EmulatorRuntime
    caller: Caller
    params: dict[str, str]
    api_version: str
    path: str  # the request path, unquoted, without a trailing slash
    grant: Any = None  # the RBAC assignment that allowed the call (Event Grid's authorization evidence)
    correlation_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    # A handler may name the resource its write/delete/action concerned, when it is not ``path``.
    event_resource_id: str | None = None
    # Set to False by a handler whose call changed nothing observable (no event).
    emit_event: bool = True
    _body: Any = None
    _body_read: bool = False

    @property
    def tenant(self) -> Tenant:
        return self.runtime.tenant

    @property
    def subscription_id(self) -> str:
        return self.params.get("subscriptionId", "")

    async def json(self) -> Any:
        if not self._body_read:
            self._body = await read_json(self.request, ArmError)
            self._body_read = True
        return self._body

    async def json_object(self) -> dict[str, Any]:
        body = await self.json()
        if not isinstance(body, dict):
            raise ArmError(
                400,
                "InvalidRequestContent",
                "The request content was invalid and could not be deserialized: the body must be a JSON object.",
            )
        return body

    def publish(self, resource_id: str, operation_name: str, event_type: str, status: int = 200) -> None:
        """Publishes an extra Microsoft.Resources operation caused by this call (e.g. each resource
        removed with its resource group)."""
        publish_operation(self, resource_id, operation_name, event_type, status)

    def absolute(self, path: str) -> str:
        """An absolute URL on this emulator (for Location headers and nextLinks)."""
        return self.runtime.base_url + path


@dataclass
class ArmRoute:
    method: str
    segments: tuple[str, ...]
    handler: Handler
    action: str
    api_versions: frozenset[str]
    provider: str  # for error texts, e.g. "Microsoft.Automation"
    resource_type: str  # for error texts, e.g. "automationAccounts"
    # False for tenant-level lists whose handler shows each caller only what it may read (GET
    # /subscriptions): there is no single scope to check the action at.
    check_scope: bool = True
    anonymous: bool = False  # served without a token (the cloud's /metadata/endpoints)

    def match(self, parts: list[str]) -> dict[str, str] | None:
        segments = self.segments
        params: dict[str, str] = {}
        if segments and segments[0] == "{scope*}":
            tail = segments[1:]
            if len(parts) <= len(tail):
                return None
            head, parts = parts[: len(parts) - len(tail)], parts[len(parts) - len(tail) :]
            params["scope"] = "/" + "/".join(head)
            segments = tail
        if len(parts) != len(segments):
            return None
        for template, actual in zip(segments, parts, strict=True):
            if template.startswith("{"):
                params[template[1:-1]] = actual
            elif template.lower() != actual.lower():
                return None
        return params


class ArmRouter:
    def __init__(self, runtime: EmulatorRuntime) -> None:
        self.runtime = runtime
        self.routes: list[ArmRoute] = []

    def add(
        self,
        method: str,
        template: str,
        handler: Handler,
        *,
        action: str,
        api_versions: set[str] | frozenset[str],
        provider: str,
        resource_type: str,
        check_scope: bool = True,
        anonymous: bool = False,
    ) -> None:
        segments = tuple(s for s in template.strip("/").split("/") if s)
        self.routes.append(
            ArmRoute(
                method.upper(),
                segments,
                handler,
                action,
                frozenset(api_versions),
                provider,
                resource_type,
                check_scope,
                anonymous,
            )
        )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            response = await self._dispatch(request)
        except ArmError as error:
            response = error.response()
        # ARM counts every request it let through, and says so on the answer, errors included.
        for name, value in request.get(RATE_LIMIT_HEADERS, {}).items():
            response.headers.setdefault(name, value)
        return response

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        runtime = self.runtime
        path = unquote(request.path).rstrip("/")
        parts = [p for p in path.split("/") if p]
        anonymous = next(
            (
                r
                for r in self.routes
                if r.anonymous and r.method == request.method and r.match(parts) is not None
            ),
            None,
        )
        if anonymous is not None:
            return await self._anonymous(request, anonymous, parts)
        caller = authenticate_arm(request, runtime.tenant, runtime.issuer)
        request["caller"] = caller
        api_version = _api_version(request)
        if len(parts) >= 2 and parts[0].lower() == "subscriptions":
            if not _is_guid(parts[1]):
                # ARM checks the form before it looks the subscription up (see emulator/README.md).
                raise ArmError(
                    400,
                    "InvalidSubscriptionId",
                    f"The provided subscription identifier '{parts[1]}' is malformed or invalid.",
                )
            if parts[1].lower() not in runtime.tenant.subscriptions:
                raise ArmError(
                    404, "SubscriptionNotFound", f"The subscription '{parts[1]}' could not be found."
                )
        subscription_id = parts[1] if len(parts) >= 2 and parts[0].lower() == "subscriptions" else None
        request[RATE_LIMIT_HEADERS] = arm_check(
            runtime.rate_limits, request.method, subscription_id, runtime.tenant.tenant_id, caller.id
        )
        candidates = [(route, params) for route in self.routes if (params := route.match(parts)) is not None]
        if not candidates:
            provider, rtype = _provider_and_type(parts)
            raise ArmError(
                404,
                "InvalidResourceType",
                f"The resource type '{rtype}' could not be found in the namespace '{provider}' for api version '{api_version}'.",
            )
        chosen = next(((r, p) for r, p in candidates if r.method == request.method), None)
        if chosen is None:
            raise ArmError(
                405,
                "MethodNotAllowed",
                f"The requested resource does not support http method '{request.method}'.",
            )
        route, params = chosen
        if api_version not in route.api_versions:
            raise ArmError(
                400,
                "NoRegisteredProviderFound",
                f"No registered resource provider found for location 'global' and API version '{api_version}' for type "
                f"'{route.resource_type}'. The supported api-versions are '{', '.join(sorted(route.api_versions))}'. "
                "The supported locations are ''.",
            )
        grant = runtime.tenant.authorize(caller.id, route.action, path) if route.check_scope else None
        if grant is None and route.check_scope:
            raise ArmError(
                403,
                "AuthorizationFailed",
                f"The client '{caller.id}' with object id '{caller.id}' does not have authorization to perform action "
                f"'{route.action}' over scope '{path}' or the scope is invalid. If access was recently granted, please "
                "refresh your credentials.",
            )
        ctx = ArmContext(request, runtime, caller, params, api_version, path, grant=grant)
        # An older api-version reads and answers in its own shape (api_versions.SHAPES).
        shape = api_versions.shape_rules(route.provider, route.resource_type, api_version)
        if shape and request.content_type == "application/json" and request.method in ("PUT", "PATCH"):
            await _read_in_version(shape, ctx)
        response = await route.handler(ctx)
        if shape:
            _render_in_version(shape, response)
        response.headers.setdefault("x-ms-correlation-request-id", ctx.correlation_id)
        response.headers.setdefault("x-ms-request-id", str(uuid.uuid4()))
        if request.method not in ("GET", "HEAD") and 200 <= response.status < 300 and ctx.emit_event:
            method = request.method
            if method == "DELETE":
                event_type = "Microsoft.Resources.ResourceDeleteSuccess"
            elif method == "POST":
                event_type = "Microsoft.Resources.ResourceActionSuccess"
            else:
                event_type = "Microsoft.Resources.ResourceWriteSuccess"
            resource_id = ctx.event_resource_id or (
                ctx.path.rsplit("/", 1)[0] if method == "POST" else ctx.path
            )
            publish_operation(ctx, resource_id, route.action, event_type, response.status)
        return response

    async def _anonymous(self, request: web.Request, route: ArmRoute, parts: list[str]) -> web.StreamResponse:
        api_version = _api_version(request)
        if api_version not in route.api_versions:
            raise ArmError(
                400,
                "InvalidApiVersionParameter",
                f"The api-version '{api_version}' is invalid. The supported versions are "
                f"'{','.join(sorted(route.api_versions, reverse=True))}'.",
            )
        params = route.match(parts) or {}
        path = "/" + "/".join(parts)
        # No token, so no caller: an anonymous handler must not look at ``ctx.caller``.
        ctx = ArmContext(request, self.runtime, cast(Caller, None), params, api_version, path)
        return await route.handler(ctx)


async def _read_in_version(shape: tuple[Any, ...], ctx: ArmContext) -> None:
    """Reads the body as the request's api-version does; a body that is not JSON is the handler's to refuse,
    after its own checks."""
    try:
        body = await ctx.json()
    except ArmError:
        return
    api_versions.read_request(shape, body)


def _render_in_version(shape: tuple[Any, ...], response: web.StreamResponse) -> None:
    """Rewrites a JSON answer without what the request's api-version does not define."""
    if isinstance(response, web.Response) and response.content_type == "application/json":
        body = response.body
        if isinstance(body, bytes) and body:
            response.body = json.dumps(api_versions.render(shape, json.loads(body))).encode()


def _is_guid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return len(text) == 36


def publish_operation(
    ctx: ArmContext, resource_id: str, operation_name: str, event_type: str, status: int
) -> None:
    parts = [p for p in resource_id.split("/") if p]
    resource_group = parts[3] if len(parts) >= 4 and parts[2].lower() == "resourcegroups" else None
    ctx.tenant.publish(
        ArmOperation(
            event_type=event_type,
            operation_name=operation_name,
            resource_id=resource_id,
            subscription_id=parts[1] if len(parts) > 1 else "",
            resource_group=resource_group,
            caller=ctx.caller.principal,
            caller_claims=ctx.caller.claims.as_jwt_claims(),
            method=ctx.request.method,
            url="https://management.azure.com" + ctx.request.path_qs,
            status=status,
            correlation_id=ctx.correlation_id,
            client_request_id=ctx.request.headers.get("x-ms-client-request-id"),
            evidence_role=ctx.grant.role.name if ctx.grant else None,
            evidence_scope=ctx.grant.scope if ctx.grant else None,
        )
    )


def _provider_and_type(parts: list[str]) -> tuple[str, str]:
    lowered = [p.lower() for p in parts]
    if "providers" in lowered:
        index = len(lowered) - 1 - lowered[::-1].index("providers")
        if index + 1 < len(parts):
            provider = parts[index + 1]
            types = parts[index + 2 :: 2]
            return provider, "/".join(types) or provider
    return "Microsoft.Resources", parts[-1] if parts else ""


# --------------------------------------------------------------------------------------------------
# Helpers for handlers


def arm_json(body: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(body).encode(),
        status=status,
        headers={"Content-Type": "application/json; charset=utf-8", **(headers or {})},
    )


def paged(ctx: ArmContext, items: list[dict], page_size: int = 100) -> web.Response:
    """ARM list page: ``{"value": [...], "nextLink": <absolute url or null>}`` with a ``$skiptoken``."""
    try:
        start = int(ctx.request.query.get("$skiptoken", "0"))
    except ValueError as exc:
        raise ArmError(400, "InvalidSkipToken", "The skip token is invalid.") from exc
    page = items[start : start + page_size]
    next_link = None
    if start + page_size < len(items):
        # The same query (its $filter too) continued; clients put their own api-version back.
        kept = [(k, v) for k, v in ctx.request.query.items() if k not in ("api-version", "$skiptoken")]
        query = urlencode(
            [("api-version", ctx.api_version), *kept, ("$skiptoken", str(start + page_size))],
            safe="$'()",
            quote_via=quote,
        )
        next_link = ctx.absolute(f"{ctx.request.path}?{query}")
    return arm_json({"value": page, "nextLink": next_link})


def system_data(resource) -> dict:
    from emulator.tenant import iso

    return {
        "createdBy": resource.created_by,
        "createdByType": "Application",
        "createdAt": iso(resource.created_at),
        "lastModifiedBy": resource.modified_by,
        "lastModifiedByType": "Application",
        "lastModifiedAt": iso(resource.modified_at),
    }


def require_resource_group(ctx: ArmContext) -> str:
    """The canonical id of the request's resource group; 404 ResourceGroupNotFound when it is missing."""
    rg_name = ctx.params["resourceGroupName"]
    rg_id = f"/subscriptions/{ctx.subscription_id}/resourceGroups/{rg_name}"
    resource_group = ctx.tenant.get_resource(rg_id)
    if resource_group is None:
        raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{rg_name}' could not be found.")
    return resource_group.id


def not_found(resource_type: str, name: str, resource_group: str) -> ArmError:
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource '{resource_type}/{name}' under resource group '{resource_group}' was not found. For more details "
        "please go to https://aka.ms/ARMResourceNotFoundFix",
    )


def validate_tags(tags: Any) -> dict[str, str]:
    """ARM's tag rules: at most 50, names <= 512 chars without <>%&\\?/, values <= 256 chars."""
    if tags is None:
        return {}
    if not isinstance(tags, dict):
        raise ArmError(
            400,
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized: 'tags' must be an object.",
        )
    if len(tags) > 50:
        raise ArmError(400, "InvalidTemplate", "The number of tags exceeds the limit of 50.")
    for name, value in tags.items():
        if not name or len(name) > 512 or any(c in name for c in "<>%&\\?/"):
            raise ArmError(
                400,
                "InvalidTagNameCharacters",
                f"The tag names '{name}' have reserved characters '<,>,%,&,\\,?,/' or control characters.",
            )
        if value is not None and (not isinstance(value, str) or len(value) > 256):
            raise ArmError(
                400,
                "InvalidTagValueLength",
                f"The tag value for '{name}' must be a string of at most 256 characters.",
            )
    return {k: (v or "") for k, v in tags.items()}


def _api_version(request: web.Request) -> str:
    """The request's api-version; every ARM request needs one, anonymous ones too."""
    api_version = request.query.get("api-version")
    if not api_version:
        raise ArmError(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    return api_version
