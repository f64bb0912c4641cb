"""Routing for the emulated Microsoft Graph v1.0.

Routes are regular expressions over the path after ``/v1.0`` (case-insensitive, as Graph is). Each
route names the application permissions that allow it (any one suffices); a caller holding none gets
``403 Authorization_RequestDenied``. A Global Administrator principal passes every check, as a
directory role held by a service principal applies to app-only calls.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from emulator.auth import Caller, authenticate_graph
from emulator.http import GRAPH_JSON, GraphError, json_response, read_json
from emulator.runtime import EmulatorRuntime
from emulator.tenant import Tenant
from emulator.throttling import graph_check

Handler = Callable[["GraphContext"], Awaitable[web.StreamResponse]]
GRAPH_PUBLIC_BASE = "https://graph.microsoft.com/v1.0"
RATE_LIMIT_HEADERS = "graph_rate_limit_headers"  # request key: x-ms-resource-unit etc. of the answer


@dataclass
class GraphContext:
    request: web.Request
    runtime: EmulatorRuntime
    caller: Caller
    params: dict[str, str]
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    _body: Any = None
    _body_read: bool = False

    @property
    def tenant(self) -> Tenant:
        return self.runtime.tenant

    @property
    def query(self):
        return self.request.query

    async def json_object(self) -> dict[str, Any]:
        if not self._body_read:
            self._body = await read_json(self.request, GraphError)
            self._body_read = True
        if not isinstance(self._body, dict):
            raise GraphError(400, "BadRequest", "Empty Payload. JSON content expected.")
        return self._body

    def respond(self, body: Any, status: int = 200) -> web.Response:
        return json_response(body, status, headers=self.headers(), content_type=GRAPH_JSON)

    def no_content(self) -> web.Response:
        return web.Response(status=204, headers=self.headers())

    def headers(self) -> dict[str, str]:
        client_request_id = self.request.headers.get("client-request-id") or self.request_id
        return {"request-id": self.request_id, "client-request-id": client_request_id}

    def error(self, status: int, code: str, message: str) -> GraphError:
        return GraphError(status, code, message)

    def next_link(self, path_and_query: str) -> str:
        """Absolute ``@odata.nextLink`` on this emulator (``path_and_query`` starts after /v1.0)."""
        return f"{self.runtime.base_url}/v1.0{path_and_query}"

    @staticmethod
    def context_url(fragment: str) -> str:
        return f"{GRAPH_PUBLIC_BASE}/$metadata#{fragment}"


@dataclass
class GraphRoute:
    method: str
    pattern: re.Pattern
    handler: Handler
    permissions: frozenset[str]


class GraphRouter:
    def __init__(self, runtime: EmulatorRuntime) -> None:
        self.runtime = runtime
        self.routes: list[GraphRoute] = []

    def add(self, method: str, pattern: str, handler: Handler, *, permissions: set[str]) -> None:
        """``pattern`` is a regex over the path after ``/v1.0`` with named groups, anchored both ends."""
        self.routes.append(
            GraphRoute(
                method.upper(), re.compile(f"^{pattern}$", re.IGNORECASE), handler, frozenset(permissions)
            )
        )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        request_id = str(uuid.uuid4())
        try:
            response = await self._dispatch(request, request_id)
        except GraphError as error:
            response = error.response(request_id, request.headers.get("client-request-id"))
        for name, value in request.get(RATE_LIMIT_HEADERS, {}).items():
            response.headers.setdefault(name, value)
        return response

    async def _dispatch(self, request: web.Request, request_id: str) -> web.StreamResponse:
        runtime = self.runtime
        caller = authenticate_graph(request, runtime.tenant, runtime.issuer)
        request["caller"] = caller
        raw_path = request.raw_path.split("?", 1)[0]
        path = unquote(raw_path)[len("/v1.0") :].rstrip("/") or "/"
        request[RATE_LIMIT_HEADERS] = graph_check(
            runtime.rate_limits,
            request.method,
            path,
            dict(request.query),
            caller.claims.app_id,
            runtime.tenant.tenant_id,
        )
        matches = [(route, m) for route in self.routes if (m := route.pattern.match(path))]
        if not matches:
            segment = path.strip("/").split("/")[-1].split("(")[0]
            raise GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")
        chosen = next(((r, m) for r, m in matches if r.method == request.method), None)
        if chosen is None:
            raise GraphError(
                405, "Request_BadRequest", "Specified HTTP method is not allowed for the request uri."
            )
        route, match = chosen
        tenant = runtime.tenant
        if (
            route.permissions
            and not tenant.is_global_admin(caller.id)
            and not (tenant.graph_permissions(caller.id) & route.permissions)
        ):
            raise GraphError(
                403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
            )
        ctx = GraphContext(
            request,
            runtime,
            caller,
            {k: v for k, v in match.groupdict().items() if v is not None},
            request_id,
        )
        return await route.handler(ctx)


GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def is_guid(value: Any) -> bool:
    return isinstance(value, str) and bool(GUID_RE.match(value))
