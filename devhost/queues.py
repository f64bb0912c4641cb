"""Storage queues: the queue output binding and the queue trigger listener (Storage Queues extension 5.x).

Listener semantics (QueueListener / QueueProcessor of Microsoft.Azure.WebJobs.Extensions.Storage.Queues):
- fetch up to ``batchSize`` messages whenever no more than ``newBatchThreshold`` are in flight;
- an empty poll backs off exponentially (randomized) from 100 ms up to ``maxPollingInterval``; a
  non-empty poll, or a message this host itself enqueued, polls again at once;
- messages are fetched with a 10-minute visibility timeout, renewed while the function runs;
- a message whose DequeueCount is already above ``maxDequeueCount`` goes straight to ``<queue>-poison``;
- success deletes the message; failure makes it visible again after ``visibilityTimeout`` unless its
  DequeueCount has reached ``maxDequeueCount``, then its original text is copied to ``<queue>-poison``
  and it is deleted; a body that is not valid base64 (messageEncoding base64) is poisoned at once.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import os
import random
import re
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.functions import meta
from azure.functions.queue import QueueMessageInConverter
from azure.storage.queue import QueueMessage as StorageMessage
from azure.storage.queue.aio import QueueClient, QueueServiceClient

from devhost.invoker import Invoker
from devhost.loader import IndexedFunction
from devhost.settings import ConfigError, QueueOptions

log = logging.getLogger("devhost")

MIN_POLLING_INTERVAL = 0.1  # QueuePollingIntervals.Minimum
# The host's own Storage calls log their requests here (quiet: devhost/__main__.py), not on azure-core's
# logger, which is the app's to set (shared/runtime.py).
HOST_HTTP_LOG = logging.getLogger("devhost.storage.http")
LEASE_SECONDS = 600  # the listener's own visibility timeout while a function runs
_QUEUE_NAME = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")


def validate_queue_name(name: str) -> str:
    if not _QUEUE_NAME.match(name):
        raise ConfigError(
            f"Invalid queue name: {name}. A queue name must be 3-63 lowercase letters, digits and single dashes."
        )
    return name


def encode_message(data: bytes | str, encoding: str) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii") if encoding == "base64" else raw.decode("utf-8")


def decode_message(text: str, encoding: str) -> bytes:
    """The message body the function sees; ValueError when it is not valid for the encoding."""
    if encoding == "base64":
        try:
            return base64.b64decode(text, validate=True)
        except binascii.Error as error:
            raise ValueError(str(error)) from None
    return text.encode("utf-8")


def output_messages(datum: meta.Datum) -> list[bytes | str]:
    """What the host writes for a value the worker encoded for a queue output binding:
    str/bytes -> one message; a JSON array -> one message per element; other JSON -> its text."""
    if datum.type in ("string", "bytes"):
        return [datum.value]
    if datum.type == "json":
        value = json.loads(datum.value)
        if isinstance(value, list):
            return [item if isinstance(item, str) else json.dumps(item) for item in value]
        return [datum.value]
    raise TypeError(f"unsupported queue output datum type {datum.type}")


class QueueStorage:
    """Queue clients per connection setting (``AzureWebJobsStorage`` unless the binding names another)."""

    def __init__(self) -> None:
        self._services: dict[str, QueueServiceClient] = {}
        self.wake_events: dict[tuple[str, str], asyncio.Event] = {}

    @staticmethod
    def connection_string(setting: str | None) -> str:
        setting = setting or "AzureWebJobsStorage"
        value = os.environ.get(setting) or os.environ.get(f"AzureWebJobs{setting}")
        if not value:
            if any(key.startswith(f"{setting}__") for key in os.environ):
                raise ConfigError(
                    f"Storage connection '{setting}' is identity-based ({setting}__...); the local host "
                    "supports connection strings (or UseDevelopmentStorage=true) only."
                )
            raise ConfigError(
                f"Storage account connection string '{setting}' does not exist. Make sure that it is a defined App Setting."
            )
        return value

    def queue(self, setting: str | None, name: str) -> QueueClient:
        setting = setting or "AzureWebJobsStorage"
        if setting not in self._services:
            # The host's own polling reads no proxy settings or ~/.netrc per call (aiohttp's trust_env:
            # a file read in a thread for every receive and delete, counted as the instance's CPU).
            self._services[setting] = QueueServiceClient.from_connection_string(
                self.connection_string(setting), use_env_settings=False, logger=HOST_HTTP_LOG
            )
        return self._services[setting].get_queue_client(name)

    async def send(self, setting: str | None, name: str, texts: list[str]) -> None:
        client = self.queue(setting, name)
        for text in texts:
            try:
                await client.send_message(text)
            except ResourceNotFoundError:
                await _create_if_missing(client)
                await client.send_message(text)
        # The host's own writes wake its listener on that queue (SharedQueueWatcher): fast pickup.
        event = self.wake_events.get((setting or "AzureWebJobsStorage", name))
        if event is not None:
            event.set()

    async def close(self) -> None:
        for service in self._services.values():
            await service.close()


async def _create_if_missing(client: QueueClient) -> None:
    with contextlib.suppress(ResourceExistsError):
        await client.create_queue()


class QueueListener:
    def __init__(
        self,
        fn: IndexedFunction,
        queue_name: str,
        storage: QueueStorage,
        options: QueueOptions,
        invoker: Invoker,
    ) -> None:
        self.fn, self.queue_name, self.options, self.invoker = fn, queue_name, options, invoker
        self.setting = fn.trigger.get("connection") or "AzureWebJobsStorage"
        self.storage = storage
        self.queue = storage.queue(self.setting, queue_name)
        self.wake = storage.wake_events.setdefault((self.setting, queue_name), asyncio.Event())
        self.processing: set[asyncio.Task] = set()
        self._delay = MIN_POLLING_INTERVAL

    async def run(self) -> None:
        while True:
            if len(self.processing) > self.options.new_batch_threshold:
                await asyncio.wait(set(self.processing), return_when=asyncio.FIRST_COMPLETED)
                continue
            self.wake.clear()  # before polling, so an enqueue during the poll is not missed
            messages = await self._receive()
            for message in messages:
                task = asyncio.create_task(self._process(message))
                self.processing.add(task)
                task.add_done_callback(self.processing.discard)
            if messages:
                self._delay = MIN_POLLING_INTERVAL
                continue
            # Empty: randomized exponential backoff, cut short when this host enqueues to the queue.
            self._delay = min(self.options.max_polling_interval, self._delay * random.uniform(1.6, 2.4))
            try:
                await asyncio.wait_for(self.wake.wait(), self._delay)
                self._delay = MIN_POLLING_INTERVAL
            except TimeoutError:
                pass

    async def _receive(self) -> list[StorageMessage]:
        try:
            pages = self.queue.receive_messages(
                messages_per_page=self.options.batch_size,
                max_messages=self.options.batch_size,
                visibility_timeout=LEASE_SECONDS,
            )
            return [message async for message in pages]
        except ResourceNotFoundError:
            return []  # the queue does not exist yet: the real listener just keeps polling
        except (AzureError, OSError) as error:  # storage unreachable or failing: keep polling
            log.warning(
                "Polling queue '%s' for function '%s' failed: %s", self.queue_name, self.fn.name, error
            )
            return []

    async def _process(self, message: StorageMessage) -> None:
        try:
            await self._handle(message)
        except Exception as error:  # storage trouble: the message simply becomes visible again later
            log.warning("Handling message %s on '%s' failed: %s", message.id, self.queue_name, error)

    async def _handle(self, message: StorageMessage) -> None:
        dequeue_count = message.dequeue_count
        if dequeue_count is None:  # the SDK fills it on every received message; only a built one lacks it
            raise ValueError(f"message {message.id} has no DequeueCount")
        if dequeue_count > self.options.max_dequeue_count:
            await self._poison(message)
            return
        try:
            body = decode_message(message.content, self.options.message_encoding)
        except ValueError:
            log.warning(
                "Message decoding has failed! Check MessageEncoding settings. MessageId=%s (queue '%s').",
                message.id,
                self.queue_name,
            )
            await self._poison(message)
            return
        renewal = asyncio.create_task(self._keep_invisible(message))
        try:
            result = await self.invoker.invoke(
                self.fn,
                self._trigger_value(message, body),
                f"New queue message detected on '{self.queue_name}'.",
            )
        finally:
            renewal.cancel()
        if result.succeeded:
            await self.queue.delete_message(message.id, message.pop_receipt)
        elif dequeue_count >= self.options.max_dequeue_count:
            await self._poison(message)
        else:
            await self.queue.update_message(
                message.id, message.pop_receipt, visibility_timeout=int(self.options.visibility_timeout)
            )

    async def _keep_invisible(self, message: StorageMessage) -> None:
        # UpdateQueueMessageVisibilityCommand: renew the lease at half time; keep the newest pop receipt.
        while True:
            await asyncio.sleep(LEASE_SECONDS / 2)
            updated = await self.queue.update_message(
                message.id, message.pop_receipt, visibility_timeout=LEASE_SECONDS
            )
            message.pop_receipt, message.next_visible_on = updated.pop_receipt, updated.next_visible_on

    async def _poison(self, message: StorageMessage) -> None:
        log.warning(
            "Message has reached MaxDequeueCount of %d. Moving message to queue '%s-poison'.",
            self.options.max_dequeue_count,
            self.queue_name,
        )
        await self.storage.send(self.setting, f"{self.queue_name}-poison", [message.content])
        await self.queue.delete_message(message.id, message.pop_receipt)

    def _trigger_value(self, message: StorageMessage, body: bytes) -> Any:
        """The QueueMessage the worker builds from the host's trigger data and metadata."""
        try:
            data = meta.Datum(body.decode("utf-8"), "string")
        except UnicodeDecodeError:
            data = meta.Datum(body, "bytes")
        return QueueMessageInConverter.decode(data, trigger_metadata=trigger_metadata(message, data))


def _json_time(value: Any) -> meta.Datum | None:
    return meta.Datum(json.dumps(value.isoformat()), "json") if value is not None else None


def trigger_metadata(message: StorageMessage, data: meta.Datum) -> dict[str, meta.Datum]:
    """As the host sends it: strings as string, numbers and DateTimeOffsets as JSON."""
    fields = {
        "QueueTrigger": data if data.type == "string" else None,
        "Id": meta.Datum(message.id, "string"),
        "PopReceipt": meta.Datum(message.pop_receipt, "string"),
        "DequeueCount": meta.Datum(json.dumps(message.dequeue_count), "json"),
        "InsertionTime": _json_time(message.inserted_on),
        "ExpirationTime": _json_time(message.expires_on),
        "NextVisibleTime": _json_time(message.next_visible_on),
    }
    return {key: value for key, value in fields.items() if value is not None}
