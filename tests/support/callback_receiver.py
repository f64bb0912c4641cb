"""An https receiver for exomi's callbacks (a stand-in for a Logic Apps webhook or a ticketing system):
an aiohttp server on 127.0.0.1 in its own thread, with a certificate from its own throw-away CA. It
records every POST and answers with the statuses queued in ``respond_with`` (then 200)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from emulator.tls import create_tls_files
from tests.support.threaded_server import ThreadedServer


@dataclass
class Delivery:
    path: str
    query: str
    headers: dict[str, str]
    body: Any
    status: int  # what the receiver answered


class CallbackReceiver(ThreadedServer[Delivery]):
    def __init__(self, directory: Path) -> None:
        self.tls = create_tls_files(directory)
        super().__init__(ssl_context=self.tls.server_context())

    @property
    def ca_cert(self) -> Path:
        return self.tls.ca_cert

    @property
    def base_url(self) -> str:
        return self.origin

    async def _handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        return self._record(
            lambda status: Delivery(request.path, request.query_string, dict(request.headers), body, status)
        )

    def wait_for_deliveries(self, count: int, timeout: float = 60.0) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.deliveries) >= count:
                    return list(self.deliveries)
            time.sleep(0.05)
        raise AssertionError(f"{len(self.deliveries)} callbacks arrived within {timeout}s, not {count}")
