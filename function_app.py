"""exomi's Azure Functions app (Python v2 programming model). Every trigger only decodes its input,
calls the ``shared`` package and encodes the answer; see docs/ARCHITECTURE.md."""

import os

import azure.functions as func

from shared import events, worker
from shared import reconcile as reconciliation

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

WORK_QUEUE = os.environ.get("EXOMI_QUEUE_NAME", "exomi-work")
STORAGE = "AzureWebJobsStorage"


@app.queue_trigger(arg_name="msg", queue_name=WORK_QUEUE, connection=STORAGE)
async def advance_request(msg: func.QueueMessage) -> None:
    await worker.process_work_item(msg.get_body(), msg.dequeue_count)


@app.queue_trigger(arg_name="msg", queue_name=f"{WORK_QUEUE}-poison", connection=STORAGE)
async def fail_poisoned_request(msg: func.QueueMessage) -> None:
    await worker.process_poison(msg.get_body())


# --- tag-driven automation (Event Grid) and reconciliation (timer): shared/events.py, shared/reconcile.py


@app.event_grid_trigger(arg_name="event")
async def on_resource_event(event: func.EventGridEvent) -> None:
    await events.on_resource_event(event)  # a CloudEvent-schema subscription delivers func.CloudEvent


@app.timer_trigger(schedule="0 */15 * * * *", arg_name="timer", run_on_startup=False)
async def reconcile(timer: func.TimerRequest) -> None:
    await reconciliation.run_once()
