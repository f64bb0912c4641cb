"""A webhook for Event Grid tests (a ThreadedServer: 127.0.0.1, free port, its own thread).

It answers the validation handshakes (or refuses them, on request), records every notification, and
answers notifications with the statuses queued in ``respond_with`` (then 200). ``hold()`` keeps
notifications unanswered (counted in ``arrived``) until ``release()``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.support.threaded_server import ThreadedServer


@dataclass
class Delivery:
    """One notification POST as the webhook received it."""

    headers: dict[str, str]
    body: list[dict[str, Any]]
    status: int  # what the webhook answered

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


class Webhook(ThreadedServer[Delivery]):
    def __init__(self, *, handshake: str = "echo") -> None:
        """``handshake``: "echo" answers the validation code, "wrong" answers another code, "error"
        answers 404, "cloudevents" accepts the OPTIONS handshake (and refuses SubscriptionValidation)."""
        super().__init__()
        self.handshake = handshake
        self.validations: list[dict[str, Any]] = []
        self.arrived = 0  # notifications received, answered or not
        self._answering = threading.Event()
        self._answering.set()

    @property
    def url(self) -> str:
        return f"{self.origin}/api/events"

    # ------------------------------------------------------------------ behaviour

    async def _handle(self, request: web.Request) -> web.Response:
        if request.method == "OPTIONS":
            if self.handshake == "cloudevents" and request.headers.get("WebHook-Request-Origin"):
                return web.Response(
                    headers={"WebHook-Allowed-Origin": request.headers["WebHook-Request-Origin"]}
                )
            return web.Response(status=405)
        body = json.loads(await request.read())
        kind = request.headers.get("aeg-event-type", "")
        if kind == "SubscriptionValidation":
            self.validations.append({"headers": dict(request.headers), "body": body})
            code = body[0]["data"]["validationCode"]
            if self.handshake == "echo":
                return web.json_response({"validationResponse": code})
            if self.handshake == "wrong":
                return web.json_response({"validationResponse": "not-the-code"})
            return web.Response(status=404)
        with self._lock:
            self.arrived += 1
        if not self._answering.is_set():
            await asyncio.to_thread(self._answering.wait)  # release() comes from the test's thread
        return self._record(lambda status: Delivery(dict(request.headers), body, status))

    def hold(self) -> None:
        """Leave notifications unanswered from now on (until ``release``)."""
        self._answering.clear()

    def release(self) -> None:
        self._answering.set()

    # ------------------------------------------------------------------ reading

    def events(self, accepted_only: bool = True) -> list[dict[str, Any]]:
        """Every event received, in arrival order (by default only from answered-2xx deliveries)."""
        with self._lock:
            deliveries = list(self.deliveries)
        return [e for d in deliveries if not accepted_only or d.status < 300 for e in d.body]

    def wait_for(self, predicate: Callable[[Webhook], Any], timeout: float = 15.0) -> Any:
        """Polls until ``predicate(self)`` is truthy and returns its value; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate(self)
            if value:
                return value
            time.sleep(0.02)
        raise AssertionError(
            f"webhook condition not met within {timeout}s; received {len(self.deliveries)} deliveries"
        )

    def wait_for_event(
        self, condition: Callable[[dict[str, Any]], bool], timeout: float = 15.0
    ) -> dict[str, Any]:
        return self.wait_for(lambda hook: next((e for e in hook.events() if condition(e)), None), timeout)
