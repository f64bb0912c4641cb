"""The work queue: one message per "advance this request", read by the queue-triggered worker.

Messages are base64 text, which is what the Functions queue extension expects by default
(host.json ``messageEncoding``). A waiting request is put back with a visibility delay, so nothing
sleeps while Azure works.
"""

from __future__ import annotations

import base64
import contextlib
import json
from datetime import timedelta

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue.aio import QueueClient

from shared.errors import ConfigurationError, InputError
from shared.ids import validate_guid
from shared.settings import Settings

# Azure Storage hides a message for at most 7 days; longer waits are re-queued by reconciliation.
MAX_DELAY = timedelta(days=7) - timedelta(minutes=1)


def encode(request_id: str) -> str:
    return base64.b64encode(json.dumps({"request_id": request_id}).encode()).decode()


def decode(body: bytes | str) -> str:
    """The request id of a work message body (already base64-decoded by the host), or InputError."""
    try:
        data = json.loads(body)
        return validate_guid(data["request_id"], "request_id")
    except (ValueError, KeyError, TypeError) as error:
        raise InputError("message", f"not an exomi work item: {error}") from None


class WorkQueue:
    def __init__(self, client: QueueClient) -> None:
        self.client = client
        self._ready = False

    @classmethod
    def open(cls, settings: Settings, credential: AsyncTokenCredential | None = None) -> WorkQueue:
        storage = settings.storage
        if storage is None:
            raise ConfigurationError("AzureWebJobsStorage", "no storage is configured for the work queue")
        if storage.connection_string is not None:
            client = QueueClient.from_connection_string(
                storage.connection_string.get_secret_value(), settings.queue_name
            )
        elif storage.queue_service_uri and credential is not None:
            client = QueueClient(storage.queue_service_uri, settings.queue_name, credential=credential)
        else:
            raise ConfigurationError(
                "AzureWebJobsStorage__queueServiceUri", "identity-based storage needs the queue service URI"
            )
        return cls(client)

    async def enqueue(self, request_id: str, delay: timedelta = timedelta(0)) -> None:
        if not self._ready:
            with contextlib.suppress(ResourceExistsError):
                await self.client.create_queue()
            self._ready = True
        seconds = int(min(max(delay, timedelta(0)), MAX_DELAY).total_seconds())
        await self.client.send_message(encode(request_id), visibility_timeout=seconds or None)

    async def close(self) -> None:
        await self.client.close()
