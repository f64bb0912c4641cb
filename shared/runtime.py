"""One ExomiApp per Functions worker process: one credential, one client per Azure service, one
state store, opened on first use and shared by every invocation (the worker runs async functions on
one event loop)."""

from __future__ import annotations

import asyncio

from shared.service import ExomiApp, ExomiService

_app: ExomiApp | None = None
_lock: asyncio.Lock | None = None


async def exomi_app() -> ExomiApp:
    global _app, _lock
    if _app is None:
        _lock = _lock or asyncio.Lock()
        async with _lock:
            if _app is None:
                _app = await ExomiApp.open()
    return _app


async def exomi_service() -> ExomiService:
    return ExomiService(await exomi_app())
