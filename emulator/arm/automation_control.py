"""Control-API endpoints for steering what Automation jobs see (documented in emulator/README.md):

  GET/POST/DELETE /_control/automation/module-failures   make imports of a known-good module fail

(Grants for tests live in emulator/grants_control.py.)
"""

from __future__ import annotations

from aiohttp import web

from emulator.control import body_of, require
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

    app.add_routes(routes)
