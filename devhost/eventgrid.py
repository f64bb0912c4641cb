"""The Event Grid trigger webhook ``/runtime/webhooks/eventgrid?functionName=<name>``.

Mirrors Microsoft.Azure.WebJobs.Extensions.EventGrid (EventGridExtensionConfigProvider.ProcessAsync and
HttpRequestProcessor): 404 "cannot find function" for an unknown/missing name; ``aeg-event-type``
SubscriptionValidation -> 200 ``{"validationResponse": code}`` (the function is not invoked);
Notification -> one invocation per event, all in parallel, 202 when all succeeded, else 500 with the
first failure's message; Unsubscribe -> 202; a missing or other header -> 400. The answers are
``StringContent``, hence text/plain.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web
from azure.functions import meta
from azure.functions.eventgrid import EventGridEventInConverter

from devhost.invoker import Invoker
from devhost.loader import IndexedFunction

EVENT_GRID_ORIGIN = "eventgrid.azure.net"


def decode_event(event: Any) -> Any:
    """``func.EventGridEvent``, or ``func.CloudEvent`` when the event has ``specversion``."""
    return EventGridEventInConverter.decode(meta.Datum(json.dumps(event), "json"), trigger_metadata={})


def _text(status: int, text: str | None = None) -> web.Response:
    return (
        web.Response(status=status, text=text, charset="utf-8")
        if text is not None
        else web.Response(status=status)
    )


async def handle(
    request: web.Request, functions: dict[str, IndexedFunction], invoker: Invoker
) -> web.Response:
    name = request.query.get("functionName", "")
    fn = functions.get(name)
    if fn is None:
        return _text(404, f"cannot find function: '{name}'")
    if request.method == "OPTIONS":  # the CloudEvents abuse-protection handshake
        origin = request.headers.get("WebHook-Request-Origin", "")
        allowed = origin if origin.lower().endswith(EVENT_GRID_ORIGIN) else EVENT_GRID_ORIGIN
        return web.Response(status=200, headers={"WebHook-Allowed-Origin": allowed})
    kind = request.headers.get("aeg-event-type", "").lower()
    if kind == "subscriptionvalidation":
        document = json.loads(await request.text())
        if isinstance(document, list):
            code = document[0]["data"]["validationCode"]
        elif isinstance(document, dict):
            data = document["data"]  # double-encoded in a CloudEvent
            code = (json.loads(data) if isinstance(data, str) else data)["validationCode"]
        else:
            raise ValueError(
                f"The request content should be parseable into a JSON object or array, but was {type(document).__name__}."
            )
        return _text(200, json.dumps({"validationResponse": code}, separators=(",", ":")))
    if kind == "notification":
        document = json.loads(await request.text())
        if isinstance(document, dict):
            document = [document]
        if not isinstance(document, list):
            raise ValueError(
                f"The request content should be parseable into a JSON object or array, but was {type(document).__name__}."
            )
        results = await asyncio.gather(
            *(invoke_event(invoker, fn, event, "EventGrid trigger fired") for event in document)
        )
        failed = next((error for error in results if error is not None), None)
        return _text(500, failed) if failed is not None else _text(202)
    if kind == "unsubscribe":
        return _text(202)
    return _text(400)


async def invoke_event(invoker: Invoker, fn: IndexedFunction, event: Any, reason: str) -> str | None:
    """Run ``fn`` for one event; the failure message, or None on success."""
    try:
        value = decode_event(event)
    except Exception as error:  # the host fails the invocation when binding the trigger fails
        return f"Exception binding parameter '{fn.trigger['name']}': {error}"
    result = await invoker.invoke(fn, value, reason)
    return None if result.succeeded else f"Exception while executing function: Functions.{fn.name}"
