"""The queue worker's channel: decode a work item and hand it to the service, which advances the
request by one engine pass (re-queueing it with a visibility delay while it waits), delivers its
callback when it ends, ends requests whose approval timed out, and takes expired access away."""

from __future__ import annotations

import logging

from shared import telemetry
from shared.errors import InputError
from shared.runtime import exomi_service
from shared.work_queue import decode

log = logging.getLogger("exomi.worker")


async def process_work_item(body: bytes | str, dequeue_count: int | None = 1) -> None:
    try:
        item = decode(body)
    except InputError as error:
        log.error("dropping a malformed work item: %s", error.message)  # retrying cannot fix it
        return
    service = await exomi_service()
    with telemetry.continued(item.traceparent):  # the trace of whoever queued it (the HTTP submit, ...)
        await service.work(item)  # an exception makes the host retry, then poison


async def process_poison(body: bytes | str) -> None:
    """A work item failed every retry: its request ends failed, with the reason, visible in the API."""
    try:
        item = decode(body)
    except InputError as error:
        log.error("dropping a malformed poison item: %s", error.message)
        return
    if item.request_id is None:
        log.error(
            "an expiry work item for %s failed every retry; reconciliation expires it", item.expire_target
        )
        return
    service = await exomi_service()
    await service.fail_poisoned(item.request_id)
