"""The queue worker's logic: advance a request by one engine pass, put it back on the queue with a
visibility delay while it waits, call back when it ends; and end poisoned requests as failed."""

from __future__ import annotations

import logging

from shared import callbacks
from shared.errors import ExomiError, InputError
from shared.models import RequestStatus
from shared.runtime import exomi_service
from shared.work_queue import decode

log = logging.getLogger("exomi.worker")


class GaveUp(ExomiError):
    code = "GaveUp"
    http_status = 500


async def process_work_item(body: bytes | str, dequeue_count: int = 1) -> None:
    try:
        request_id = decode(body)
    except InputError as error:
        log.error("dropping a malformed work item: %s", error.message)  # retrying cannot fix it
        return
    service = await exomi_service()
    record = await service.app.state.requests.find(request_id)
    if record is None:
        log.error("dropping a work item for unknown request %s", request_id)
        return
    record = await service.advance(request_id)  # an exception makes the host retry, then poison
    if record.status.active:
        await service.enqueue(record)
        return
    await callbacks.deliver(record, service.app.state, service.app.settings)


async def process_poison(body: bytes | str) -> None:
    """A work item failed every retry: the request ends failed, with the reason, visible in the API."""
    try:
        request_id = decode(body)
    except InputError as error:
        log.error("dropping a malformed poison item: %s", error.message)
        return
    service = await exomi_service()
    record = await service.app.state.requests.find(request_id)
    if record is None or not record.status.active:
        return
    error = GaveUp(
        "exomi gave up on this request: processing it failed on every retry of the work queue (see the Function "
        "app's logs for the exception). Send the request again once the cause is fixed."
    )
    record = await service.app.state.finish(record, RequestStatus.FAILED, message=error.message, error=error)
    log.error("request %s ended failed: its work item was poisoned", request_id)
    await callbacks.deliver(record, service.app.state, service.app.settings)
