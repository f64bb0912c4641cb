"""One ExomiApp per Functions worker process: one credential, one client per Azure service, one
state store, opened on first use and shared by every invocation (the worker runs async functions on
one event loop). Opening it also starts loading the Azure SDKs in a thread (shared/azure/clients.py)."""

from __future__ import annotations

import asyncio
import logging
import threading

from shared.azure.clients import preload_sdks
from shared.service import ExomiApp, ExomiService

_app: ExomiApp | None = None
_lock: asyncio.Lock | None = None
# azure-core logs every request and response (URL, headers) at INFO, and the Functions worker forwards
# INFO to the host: a few lines and a few hundred microseconds of CPU per ARM, Graph or Storage call. The
# worker leaves it at WARNING unless the logger's level was set (to see them while debugging).
SDK_REQUEST_LOGGER = "azure.core.pipeline.policies.http_logging_policy"


def quiet_sdk_request_logs() -> None:
    logger = logging.getLogger(SDK_REQUEST_LOGGER)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.WARNING)


async def exomi_app() -> ExomiApp:
    global _app, _lock
    if _app is None:
        _lock = _lock or asyncio.Lock()
        async with _lock:
            if _app is None:
                quiet_sdk_request_logs()
                _app = await ExomiApp.open()
                # A worker lives for many requests: the SDKs its steps use are loaded now, off the event
                # loop, rather than in the first request that meets each one.
                threading.Thread(target=preload_sdks, name="exomi-preload", daemon=True).start()
    return _app


async def exomi_service() -> ExomiService:
    return ExomiService(await exomi_app())
