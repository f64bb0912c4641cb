"""An https receiver for exomi's callbacks (a stand-in for a Logic Apps webhook or a ticketing system):
an aiohttp server on 127.0.0.1 in its own thread, with a certificate from its own throw-away CA. It
records every POST and answers with the statuses queued in ``respond_with`` (then 200)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from emulator.tls import create_tls_files


@dataclass
class Delivery:
    path: str
    query: str
    headers: dict[str, str]
    body: Any
    status: int  # what the receiver answered


class CallbackReceiver:
    def __init__(self, directory: Path) -> None:
        self.tls = create_tls_files(directory)
        self.deliveries: list[Delivery] = []
        self._statuses: list[int] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    @property
    def ca_cert(self) -> Path:
        return self.tls.ca_cert

    def start(self) -> CallbackReceiver:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
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
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.tls.server_context())
        await site.start()
        self.base_url = f"https://127.0.0.1:{self._runner.addresses[0][1]}"

    def respond_with(self, *statuses: int) -> None:
        with self._lock:
            self._statuses.extend(statuses)

    async def _handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        with self._lock:
            status = self._statuses.pop(0) if self._statuses else 200
            self.deliveries.append(
                Delivery(request.path, request.query_string, dict(request.headers), body, status)
            )
        return web.Response(status=status)

    def wait_for_deliveries(self, count: int, timeout: float = 60.0) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.deliveries) >= count:
                    return list(self.deliveries)
            time.sleep(0.05)
        raise AssertionError(f"{len(self.deliveries)} callbacks arrived within {timeout}s, not {count}")
