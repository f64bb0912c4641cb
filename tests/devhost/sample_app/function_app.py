"""A small v2-model app that exercises every trigger devhost serves. Each function records what it
received as a JSON file under $SAMPLE_RECORD_DIR/<function>/, which the tests read back."""

import itertools
import json
import os
import time
import uuid
from pathlib import Path

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


def record(function: str, **fields) -> None:
    folder = Path(os.environ["SAMPLE_RECORD_DIR"]) / function
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{uuid.uuid4().hex}"
    temporary.write_text(json.dumps(fields, default=str))
    temporary.rename(folder / f"{uuid.uuid4().hex}.json")  # readers never see half a file


@app.route(route="echo/{name}", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
def echo(req: func.HttpRequest) -> func.HttpResponse:
    received = {
        "type": f"{type(req).__module__}.{type(req).__name__}",
        "method": req.method,
        "url": req.url,
        "params": dict(req.params),
        "route_params": dict(req.route_params),
        "headers": dict(req.headers),
        "body": req.get_body().decode(),
    }
    return func.HttpResponse(
        json.dumps(received),
        status_code=201,
        headers={"X-Echo": "yes", "Set-Cookie": "session=abc; Path=/"},
        mimetype="application/json",
    )


@app.route(route="items/{item_id:int}/{tag?}", methods=["GET"])
def get_item(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(dict(req.route_params)), mimetype="application/json")


@app.route(route="orders/{order_id:guid}", methods=["DELETE"], auth_level=func.AuthLevel.ADMIN)
def delete_order(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(status_code=204)


@app.route(route="greeting", auth_level=func.AuthLevel.ANONYMOUS)
async def greeting(req: func.HttpRequest) -> str:
    return f"hello {req.params.get('name', 'world')}"


@app.route(route="boom", auth_level=func.AuthLevel.ANONYMOUS)
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("boom")


@app.route(route="enqueue", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@app.queue_output(arg_name="outq", queue_name="%OUTBOX_QUEUE%", connection="AzureWebJobsStorage")
async def enqueue(req: func.HttpRequest, outq: func.Out[str]) -> func.HttpResponse:
    """Writes to a queue nobody listens on, so the tests can read the raw messages."""
    payload = req.get_json()
    outq.set(payload["messages"] if "messages" in payload else payload["message"])
    return func.HttpResponse("queued", status_code=202)


@app.route(route="submit", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@app.queue_output(arg_name="work_item", queue_name="%WORK_QUEUE%", connection="AzureWebJobsStorage")
def submit(req: func.HttpRequest, work_item: func.Out[str]) -> func.HttpResponse:
    """Feeds the queue-triggered ``work`` function."""
    work_item.set(req.get_body().decode())
    return func.HttpResponse("accepted", status_code=202)


@app.queue_trigger(arg_name="msg", queue_name="%WORK_QUEUE%", connection="AzureWebJobsStorage")
def work(msg: func.QueueMessage, context: func.Context) -> None:
    body = msg.get_body().decode()
    record(
        "work",
        type=f"{type(msg).__module__}.{type(msg).__name__}",
        body=body,
        id=msg.id,
        dequeue_count=msg.dequeue_count,
        insertion_time=msg.insertion_time,
        pop_receipt=msg.pop_receipt,
        function_name=context.function_name,
        instance=os.environ.get("SAMPLE_INSTANCE"),
    )
    # "slow-N:..." takes N seconds; "fail-N:..." fails while dequeue_count <= N; "always-fail:..." never succeeds.
    if body.startswith("slow-"):
        time.sleep(float(body[5 : body.index(":")]))
    if body.startswith("always-fail:"):
        raise RuntimeError("always fails")
    if body.startswith("fail-") and msg.dequeue_count <= int(body[5 : body.index(":")]):
        raise RuntimeError(f"failing attempt {msg.dequeue_count}")


@app.event_grid_trigger(arg_name="event")
def on_event(event: func.EventGridEvent) -> None:
    data = event.get_json()  # a func.CloudEvent when the payload has "specversion"
    record("on_event", id=event.id, kind=type(event).__name__, data=data)
    if data.get("fail"):
        raise ValueError(f"event {event.id} is marked to fail")


_tick_runs = itertools.count(1)


@app.schedule(schedule="%TICK_SCHEDULE%", arg_name="timer", use_monitor=False)
def tick(timer: func.TimerRequest) -> None:
    run = next(_tick_runs)
    started = time.time()
    if run == 2:
        time.sleep(1.5)  # overruns the next occurrence: the run after it is past due
    record("tick", run=run, past_due=timer.past_due, started=started, ended=time.time())


@app.schedule(schedule="0 0 3 1 1 *", arg_name="timer", run_on_startup=True, use_monitor=False)
def nightly(timer: func.TimerRequest) -> None:
    record("nightly", past_due=timer.past_due, status=timer.schedule_status)
