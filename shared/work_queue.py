"""The work queue: one message per "advance this request", read by the queue-triggered worker.

Messages are base64 text, which is what the Functions queue extension expects by default
(host.json ``messageEncoding``). A waiting request is put back with a visibility delay, so nothing
sleeps while Azure works.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from shared import telemetry
from shared.azure.sessions import sdk_http_options
from shared.errors import ConfigurationError, InputError
from shared.ids import parse_resource_id, validate_guid
from shared.settings import Settings

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.storage.queue.aio import QueueClient

# Azure Storage hides a message for at most 7 days; longer waits are re-queued by reconciliation.
MAX_DELAY = timedelta(days=7) - timedelta(minutes=1)


@dataclass(frozen=True)
class WorkItem:
    """Advance a request (``request_id``), or take a target's access away when it expires
    (``expire_target`` at ``expires_at``, the expiry the message was scheduled for)."""

    request_id: str | None = None
    expire_target: str | None = None
    expires_at: datetime | None = None
    # The W3C trace context of whoever queued a request's item (telemetry.continued() goes on with it).
    traceparent: str | None = None


def _encoded(data: dict[str, str]) -> str:
    return base64.b64encode(json.dumps(data).encode()).decode()


def encode(request_id: str, traceparent: str | None = None) -> str:
    data = {"request_id": request_id}
    if traceparent:
        data["traceparent"] = traceparent
    return _encoded(data)


def encode_expiry(target: str, expires_at: datetime) -> str:
    return _encoded({"expire_target": target, "expires_at": expires_at.isoformat()})


def decode(body: bytes | str) -> WorkItem:
    """The work item of a message body (already base64-decoded by the host), or InputError."""
    try:
        data = json.loads(body)
        if "expire_target" in data:
            target = parse_resource_id(data["expire_target"], "expire_target").canonical
            return WorkItem(expire_target=target, expires_at=datetime.fromisoformat(data["expires_at"]))
        return WorkItem(
            request_id=validate_guid(data["request_id"], "request_id"),
            traceparent=telemetry.valid_traceparent(data.get("traceparent")),  # a bad one is ignored
        )
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise InputError("message", f"not an exomi work item: {error}") from None


class WorkQueue:
    """The queue's client is made on first use: a process that never queues (``exomi provision``
    waiting for its request) does not load the Queue Storage SDK."""

    def __init__(self, make_client: Callable[[], QueueClient]) -> None:
        self._make_client = make_client
        self._client: QueueClient | None = None

    @property
    def client(self) -> QueueClient:
        if self._client is None:
            self._client = self._make_client()
        return self._client

    @classmethod
    def open(cls, settings: Settings, credential: AsyncTokenCredential | None = None) -> WorkQueue:
        storage = settings.storage
        if storage is None:
            raise ConfigurationError("AzureWebJobsStorage", "no storage is configured for the work queue")
        # Fail fast when the queue does not answer (the defaults retry for more than a minute): the
        # request is recorded already, and the resume pass queues a request that has no work item.
        # (The async client builds its retry policy from these: initial_backoff, increment_base, retry_total.)
        options: dict[str, Any] = {
            "initial_backoff": 1,
            "increment_base": 2,
            "retry_total": 2,
            "connection_timeout": 5,
            **sdk_http_options(settings.https_proxy, settings.no_proxy),
        }
        connection_string, service_uri = storage.connection_string, storage.queue_service_uri
        if connection_string is None and not (service_uri and credential is not None):
            raise ConfigurationError(
                "AzureWebJobsStorage__queueServiceUri", "identity-based storage needs the queue service URI"
            )

        def make_client() -> QueueClient:
            from azure.storage.queue.aio import QueueClient

            if connection_string is not None:
                return QueueClient.from_connection_string(
                    connection_string.get_secret_value(), settings.queue_name, **options
                )
            assert service_uri is not None  # checked above
            return QueueClient(service_uri, settings.queue_name, credential=credential, **options)

        return cls(make_client)

    def prepare(self) -> None:
        """Loads the Queue Storage SDK and makes the client now (no call is made), so that a command
        that records a request and then queues it does not make the request wait for the import."""
        _ = self.client

    async def check(self) -> None:
        """Raises when the queue does not answer (the health check)."""
        await self.client.get_queue_properties()

    async def has_visible_messages(self) -> bool:
        """Whether a message waits at the front of the queue now (a backlog), peeked without taking it."""
        try:
            return bool(await self.client.peek_messages(max_messages=1))
        except ResourceNotFoundError:
            return False  # no queue yet: nothing waits in it

    async def enqueue(self, request_id: str, delay: timedelta = timedelta(0)) -> None:
        # Rounded down: the engine pass holds the fraction of a second left (EXOMI_HOLD_SECONDS), so a
        # request is looked at when it is due, not up to a second later.
        await self._send(encode(request_id, telemetry.traceparent()), delay, round_up=False)

    async def enqueue_expiry(self, target: str, expires_at: datetime, delay: timedelta) -> None:
        await self._send(encode_expiry(target, expires_at), delay, round_up=True)

    async def _send(self, message: str, delay: timedelta, *, round_up: bool) -> None:
        # Whole seconds: what Queue Storage takes.
        exact = min(max(delay, timedelta(0)), MAX_DELAY).total_seconds()
        seconds = math.ceil(exact) if round_up else math.floor(exact)
        try:
            await self.client.send_message(message, visibility_timeout=seconds or None)
        except ResourceNotFoundError:
            # The queue is made once per deployment (the first message), not looked for on every send.
            with contextlib.suppress(ResourceExistsError):
                await self.client.create_queue()
            await self.client.send_message(message, visibility_timeout=seconds or None)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
