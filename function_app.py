"""exomi's Azure Functions app (Python v2 programming model). Every trigger only decodes its input,
calls the ``shared`` package and encodes the answer; see docs/ARCHITECTURE.md.

The ``shared`` modules are imported inside the triggers, on their first invocation: the host indexes
this file (and a cold start is paid) with azure.functions alone, not with every Azure SDK
(bench/cold_import.py measures it). Python caches a module after its first import.
"""

import os

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

WORK_QUEUE = os.environ.get("EXOMI_QUEUE_NAME", "exomi-work")
STORAGE = "AzureWebJobsStorage"


@app.queue_trigger(arg_name="msg", queue_name=WORK_QUEUE, connection=STORAGE)
async def advance_request(msg: func.QueueMessage, context: func.Context) -> None:
    from shared import telemetry, worker

    with telemetry.invoked(context.trace_context.trace_parent):  # exomi's spans join the host's trace
        await worker.process_work_item(msg.get_body(), msg.dequeue_count)


@app.queue_trigger(arg_name="msg", queue_name=f"{WORK_QUEUE}-poison", connection=STORAGE)
async def fail_poisoned_request(msg: func.QueueMessage, context: func.Context) -> None:
    from shared import telemetry, worker

    with telemetry.invoked(context.trace_context.trace_parent):
        await worker.process_poison(msg.get_body())


# --- tag-driven automation (Event Grid) and reconciliation (timer): shared/events.py, shared/reconcile.py


@app.event_grid_trigger(arg_name="event")
async def on_resource_event(event: func.EventGridEvent, context: func.Context) -> None:
    from shared import events, telemetry

    with telemetry.invoked(context.trace_context.trace_parent):
        await events.on_resource_event(event)  # a CloudEvent-schema subscription delivers func.CloudEvent


@app.timer_trigger(schedule="0 */15 * * * *", arg_name="timer", run_on_startup=False)
async def reconcile(timer: func.TimerRequest, context: func.Context) -> None:
    from shared import reconcile as reconciliation
    from shared import telemetry

    with telemetry.invoked(context.trace_context.trace_parent):
        await reconciliation.run_once()


@app.timer_trigger(schedule="*/30 * * * * *", arg_name="timer", run_on_startup=False)
async def resume_requests(timer: func.TimerRequest, context: func.Context) -> None:
    from shared import reconcile as reconciliation
    from shared import telemetry

    with telemetry.invoked(context.trace_context.trace_parent):
        await reconciliation.resume_once()


# --- HTTP API (docs/API.md). One trigger per route of shared/api/routes.py, named by its operation id.


async def _serve(operation: str, req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared import telemetry
    from shared.api import functions as http_api

    with telemetry.invoked(context.trace_context.trace_parent):
        return await http_api.serve(operation, req)


@app.route(route="requests", methods=["POST"])
async def create_request(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return await _serve("create_request", req, context)


@app.route(route="requests", methods=["GET"])
async def list_requests(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return await _serve("list_requests", req, context)


@app.route(route="requests/{id}", methods=["GET"])
async def get_request(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return await _serve("get_request", req, context)


@app.route(route="requests/{id}/approval", methods=["POST"])
async def decide_approval(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return await _serve("decide_approval", req, context)


@app.route(route="requests/{id}/cancel", methods=["POST"])
async def cancel_request(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return await _serve("cancel_request", req, context)


@app.route(route="findings", methods=["GET"])
async def list_findings(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return await _serve("list_findings", req, context)


@app.route(route="inventory", methods=["GET"])
async def get_inventory(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return await _serve("get_inventory", req, context)


@app.route(route="refusals", methods=["GET"])
async def list_refusals(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return await _serve("list_refusals", req, context)


@app.route(route="plan", methods=["POST"])
async def plan_request(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return await _serve("plan_request", req, context)


@app.route(route="diagnose", methods=["POST"])
async def diagnose_target(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return await _serve("diagnose_target", req, context)


@app.route(route="revocations", methods=["POST"])
async def create_revocation(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return await _serve("create_revocation", req, context)


@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def get_health(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return await _serve("get_health", req, context)


@app.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def get_openapi(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return await _serve("get_openapi", req, context)
