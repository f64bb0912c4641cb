"""Builds and starts the emulator's two listeners:

* HTTPS (the ready line's ``arm_endpoint``): ARM under ``/subscriptions``, Graph under ``/v1.0``,
  the control API under ``/_control``.
* HTTP (``identity_endpoint``): the managed-identity token endpoints, plain HTTP as in Azure.

Resource providers live in ``emulator/arm/*.py`` and Graph areas in ``emulator/graph/*.py``; every
module there with a ``register(router)`` function is picked up. A module with
``register_control(app, runtime)`` adds control-API routes; ``attach(runtime, app)`` lets a component
(Event Grid) start background work with the app.
"""

from __future__ import annotations

import importlib
import pkgutil
import time
from pathlib import Path

from aiohttp import web

import emulator.arm
import emulator.graph
from emulator import control, identity_endpoint
from emulator.arm.router import ArmRouter
from emulator.graph.router import GraphRouter
from emulator.http import LogEntry, service_of
from emulator.runtime import EmulatorRuntime
from emulator.tenant import iso
from emulator.tls import TlsFiles


def _component_modules():
    for package in (emulator.arm, emulator.graph):
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
            yield importlib.import_module(f"{package.__name__}.{info.name}")
    for name in ("eventgrid", "grants_control"):
        try:
            yield importlib.import_module(f"emulator.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"emulator.{name}":
                raise


def _log_middleware(runtime: EmulatorRuntime):
    @web.middleware
    async def middleware(request: web.Request, handler):
        started = time.perf_counter()
        service = service_of(request.path)
        fault = None
        status = 500
        try:
            if service in ("arm", "graph", "identity"):
                response, fault = await runtime.faults.apply(request)
                if response is not None:
                    status = response.status
                    return response
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except ConnectionResetError:
            status = 0
            fault = "dropped connection"
            raise
        finally:
            if service != "control":
                caller = request.get("caller")
                runtime.log.add(
                    LogEntry(
                        time=iso(time.time()),  # when the answer went out, to the 100 ns
                        service=service,
                        method=request.method,
                        path=request.path,
                        query=request.query_string,
                        status=status,
                        duration_ms=round((time.perf_counter() - started) * 1000, 2),
                        caller_id=caller.id if caller else None,
                        caller_name=caller.principal.display_name if caller else None,
                        client_request_id=request.headers.get("x-ms-client-request-id")
                        or request.headers.get("client-request-id"),
                        fault=fault,
                    )
                )

    return middleware


def build_main_app(runtime: EmulatorRuntime) -> web.Application:
    app = web.Application(
        middlewares=[_log_middleware(runtime), control.control_errors], client_max_size=16 * 1024 * 1024
    )
    arm_router = ArmRouter(runtime)
    graph_router = GraphRouter(runtime)
    app["runtime"] = runtime
    app["arm_router"] = arm_router
    app["graph_router"] = graph_router
    control.register(app, runtime)
    for module in _component_modules():
        if hasattr(module, "register"):
            target = graph_router if module.__name__.startswith("emulator.graph.") else arm_router
            if module.__name__.startswith(("emulator.arm.", "emulator.graph.")):
                module.register(target)
        if hasattr(module, "register_control"):
            module.register_control(app, runtime)
        if hasattr(module, "attach"):
            module.attach(runtime, app)
    app.router.add_route("*", "/v1.0{tail:(/.*)?}", graph_router.handle)
    app.router.add_route("*", "/{tail:(?!_control).*}", arm_router.handle)
    return app


def build_identity_app(runtime: EmulatorRuntime) -> web.Application:
    app = web.Application(middlewares=[_log_middleware(runtime)])
    app_service, imds = identity_endpoint.build_handlers(runtime)
    app.router.add_get("/msi/token", app_service)
    app.router.add_get("/metadata/identity/oauth2/token", imds)
    return app


async def start(
    runtime: EmulatorRuntime, tls: TlsFiles, *, host: str = "127.0.0.1", port: int = 0, identity_port: int = 0
) -> list[web.AppRunner]:
    main_runner = web.AppRunner(build_main_app(runtime), access_log=None, handle_signals=False)
    await main_runner.setup()
    site = web.TCPSite(main_runner, host, port, ssl_context=tls.server_context())
    await site.start()
    bound_port = main_runner.addresses[0][1]
    runtime.base_url = f"https://{host}:{bound_port}"

    identity_runner = web.AppRunner(build_identity_app(runtime), access_log=None, handle_signals=False)
    await identity_runner.setup()
    await web.TCPSite(identity_runner, host, identity_port).start()
    runtime.identity_url = f"http://{host}:{identity_runner.addresses[0][1]}/msi/token"
    return [main_runner, identity_runner]


def ready_line(runtime: EmulatorRuntime, tls: TlsFiles) -> dict:
    details = control.info(runtime)
    details["ca_bundle"] = str(Path(tls.ca_cert).resolve())
    return details
