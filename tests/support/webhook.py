"""A webhook for Event Grid tests: an aiohttp server on 127.0.0.1 (free port) in its own thread, so
that the emulator can call it while the test blocks on sync SDK or control-API calls.

It answers the validation handshakes (or refuses them, on request), records every notification, and
answers notifications with the statuses queued in ``respond_with`` (then 200).
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


@dataclass
class Delivery:
    """One notification POST as the webhook received it."""

    headers: dict[str, str]
    body: list[dict[str, Any]]
    status: int  # what the webhook answered

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


class Webhook:
    def __init__(self, *, handshake: str = "echo") -> None:
        """``handshake``: "echo" answers the validation code, "wrong" answers another code, "error"
        answers 404, "cloudevents" accepts the OPTIONS handshake (and refuses SubscriptionValidation)."""
        self.handshake = handshake
        self.deliveries: list[Delivery] = []
        self.validations: list[dict[str, Any]] = []
        self._statuses: list[int] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.url = ""

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Webhook:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        """Stops the server (the URL then refuses connections); calling it again does nothing."""
        if self._runner is None:
            return
        runner, self._runner = self._runner, None
        asyncio.run_coroutine_threadsafe(runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/api/events"

    # ------------------------------------------------------------------ behaviour

    def respond_with(self, *statuses: int) -> None:
        """Answer the next notifications with these statuses (then 200 again)."""
        with self._lock:
            self._statuses.extend(statuses)

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
            status = self._statuses.pop(0) if self._statuses else 200
            self.deliveries.append(Delivery(dict(request.headers), body, status))
        return web.Response(status=status)

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
