"""The host's HTTP surface: HTTP triggers under ``/<routePrefix>``, the Event Grid webhook, the admin API
(``/admin/host/status``, ``/admin/functions[/<name>]``) and the anonymous home page ``/``.

Keys work as in Azure: a function key or the master key in ``x-functions-key`` or ``?code=`` for
``function`` level, the master key alone for ``admin`` level and the admin API; a missing or wrong key
is a bare 401. (Core Tools skips key checks locally; Azure does not, and neither does this host.)
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import CIMultiDict, MultiDict

from devhost import eventgrid, httptrigger
from devhost.invoker import Invoker
from devhost.loader import IndexedFunction
from devhost.routes import RouteTemplate

log = logging.getLogger("devhost")

HOME_PAGE = "<html><body><h1>Your Functions 4.0 app is up and running</h1>(devhost)</body></html>"


@dataclass
class Keys:
    master: str
    function: str
    eventgrid: str | None = None  # the eventgrid_extension system key; None = not required (Core Tools)


@dataclass
class HttpRoute:
    fn: IndexedFunction
    template: RouteTemplate
    methods: set[str] | None  # None = every method
    auth_level: str


def http_route(fn: IndexedFunction) -> HttpRoute:
    trigger = fn.trigger
    methods = {m.upper() for m in trigger.get("methods") or []} or None
    return HttpRoute(
        fn,
        RouteTemplate.compile(trigger.get("route") or fn.name),
        methods,
        str(trigger.get("authLevel", "FUNCTION")).upper(),
    )


class HostServer:
    def __init__(
        self,
        functions: list[IndexedFunction],
        keys: Keys,
        invoker: Invoker,
        route_prefix: str,
        invoke_direct: Callable[[IndexedFunction, Any], Any],
        status: Callable[[], dict],
    ) -> None:
        self.functions = {fn.name: fn for fn in functions}
        self.keys, self.invoker, self.route_prefix = keys, invoker, route_prefix.strip("/")
        self.invoke_direct, self.status = invoke_direct, status
        routes = [http_route(fn) for fn in functions if fn.trigger_type == "httpTrigger"]
        self.routes = sorted(routes, key=lambda r: (r.template.precedence, r.template.template.lower()))
        self.event_grid = {fn.name: fn for fn in functions if fn.trigger_type == "eventGridTrigger"}

    def web_app(self) -> web.Application:
        app = web.Application(client_max_size=100 * 1024 * 1024)  # the host's default request size limit
        # Every path, line breaks in it included ('.' alone stops at one): the host answers for all of them.
        app.router.add_route("*", r"/{tail:[\s\S]*}", self.dispatch)
        return app

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        try:
            if path == "/" and request.method in ("GET", "HEAD") and self.route_prefix:
                return web.Response(text=HOME_PAGE, content_type="text/html")
            if path == "/admin" or path.startswith("/admin/"):
                if not self._has_key(request, self.keys.master):
                    return web.Response(status=401)
                return await self.admin(request, path[len("/admin/") :])
            if path.rstrip("/").lower() == "/runtime/webhooks/eventgrid":
                if self.keys.eventgrid and not self._has_key(request, self.keys.eventgrid, self.keys.master):
                    return web.Response(status=401)
                return await eventgrid.handle(request, self.event_grid, self.invoker)
            return await self.http_trigger(request, path)
        except Exception:
            log.exception("Unhandled error serving %s %s", request.method, path)
            return web.Response(status=500)

    def _has_key(self, request: web.Request, *accepted: str) -> bool:
        presented = request.headers.get("x-functions-key") or request.query.get("code") or ""
        return any(hmac.compare_digest(presented.encode(), key.encode()) for key in accepted if key)

    def find_route(self, method: str, path: str) -> tuple[HttpRoute, dict[str, str]] | None:
        prefix = f"/{self.route_prefix}" if self.route_prefix else ""
        if not path.lower().startswith(prefix.lower()) or (
            prefix and path[len(prefix) :][:1] not in ("", "/")
        ):
            return None
        rest = path[len(prefix) :]
        for route in self.routes:
            if route.methods is not None and method.upper() not in route.methods:
                continue
            params = route.template.match(rest)
            if params is not None:
                return route, params
        return None

    async def http_trigger(self, request: web.Request, path: str) -> web.StreamResponse:
        found = self.find_route(request.method, path)
        if found is None:
            return web.Response(status=404)
        route, params = found
        if route.auth_level == "FUNCTION" and not self._has_key(
            request, self.keys.function, self.keys.master
        ):
            return web.Response(status=401)
        if route.auth_level == "ADMIN" and not self._has_key(request, self.keys.master):
            return web.Response(status=401)
        trigger_value = await httptrigger.from_aiohttp(request, params)
        result = await self.invoker.invoke(
            route.fn, trigger_value, "This function was programmatically called via the host APIs."
        )
        if not result.succeeded or result.return_value is None:
            return web.Response(status=500)
        return httptrigger.to_response(result.return_value)

    # -- admin API --------------------------------------------------------------------------------------

    async def admin(self, request: web.Request, rest: str) -> web.StreamResponse:
        if rest == "host/status" and request.method == "GET":
            return web.json_response(self.status())
        if rest == "functions" and request.method == "GET":
            return web.json_response([self.metadata(request, fn) for fn in self.functions.values()])
        if rest.startswith("functions/") and "/" not in rest[len("functions/") :]:
            fn = self._lookup(rest[len("functions/") :])
            if fn is None:
                return web.Response(status=404)
            if request.method == "GET":
                return web.json_response(self.metadata(request, fn))
            if request.method == "POST":
                return await self.admin_invoke(request, fn)
            return web.Response(status=405)
        return web.Response(status=404)

    def _lookup(self, name: str) -> IndexedFunction | None:
        return next((fn for fn in self.functions.values() if fn.name.lower() == name.lower()), None)

    def metadata(self, request: web.Request, fn: IndexedFunction) -> dict:
        """A subset of the host's FunctionMetadataResponse; ``config.bindings`` are the raw bindings."""
        base = f"{request.scheme}://{request.host}"
        return {
            "name": fn.name,
            "href": f"{base}/admin/functions/{fn.name}",
            "invoke_url_template": self.invoke_url(base, fn),
            "language": "python",
            "config": {"bindings": fn.bindings},
            "isDisabled": False,
        }

    def invoke_url(self, base: str, fn: IndexedFunction) -> str | None:
        if fn.trigger_type == "httpTrigger":
            route = http_route(fn).template.template.strip("/")
            return f"{base}/{self.route_prefix}/{route}" if self.route_prefix else f"{base}/{route}"
        if fn.trigger_type == "eventGridTrigger":
            return f"{base}/runtime/webhooks/eventgrid?functionName={fn.name}"
        return None

    async def admin_invoke(self, request: web.Request, fn: IndexedFunction) -> web.StreamResponse:
        """``POST /admin/functions/<name>`` with ``{"input": ...}``: start the function and answer 202 at
        once, as the host's FunctionsController.Invoke does; 400 when the body is not such an object."""
        try:
            body = json.loads(await request.text())
        except ValueError:
            return web.Response(status=400)
        if not isinstance(body, dict):
            return web.Response(status=400)
        data = body.get("input")
        if fn.trigger_type == "httpTrigger":
            # The input becomes the body of a POST to the function's own URL.
            url = self.invoke_url(f"{request.scheme}://{request.host}", fn) or ""
            text = data if isinstance(data, str) else json.dumps(data) if data is not None else ""
            value = httptrigger.build_request(
                "POST", url, CIMultiDict(), MultiDict(), {}, text.encode("utf-8")
            )
            self.invoke_direct(fn, value)
        else:
            self.invoke_direct(fn, data)
        return web.Response(status=202)


def host_status(started: float, bundle: dict | None) -> dict:
    return {
        "id": "devhost",
        "state": "Running",
        "version": "4.0.0-devhost",
        "processUptime": int((time.monotonic() - started) * 1000),
        "extensionBundle": bundle,
    }
