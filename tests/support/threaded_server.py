"""The base of the tests' stand-in receivers (Event Grid webhook, callback receiver): an aiohttp server
on 127.0.0.1 (free port) in its own thread, so that the emulator or the app can call it while the test
blocks on sync SDK or control-API calls. It records deliveries and answers them with the statuses queued
in ``respond_with`` (then 200)."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Callable
from typing import Generic, Self, TypeVar

from aiohttp import web

D = TypeVar("D")


class ThreadedServer(Generic[D]):
    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.deliveries: list[D] = []
        self.origin = ""  # "http(s)://127.0.0.1:{port}" once started
        self._ssl_context = ssl_context
        self._statuses: list[int] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        """Stops the server (its URL then refuses connections); calling it again does nothing."""
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
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._ssl_context)
        await site.start()
        scheme = "https" if self._ssl_context else "http"
        self.origin = f"{scheme}://127.0.0.1:{self._runner.addresses[0][1]}"

    async def _handle(self, request: web.Request) -> web.Response:
        raise NotImplementedError

    def respond_with(self, *statuses: int) -> None:
        """Answer the next deliveries with these statuses (then 200 again)."""
        with self._lock:
            self._statuses.extend(statuses)

    def _record(self, delivery: Callable[[int], D]) -> web.Response:
        """Records ``delivery(status)`` with the next queued status and answers with that status."""
        with self._lock:
            status = self._statuses.pop(0) if self._statuses else 200
            self.deliveries.append(delivery(status))
        return web.Response(status=status)
