"""``DevHost``: load a function app and run its triggers like ``func start`` (in-process, asyncio)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from azure.functions import meta
from azure.functions.queue import QueueMessageInConverter

from devhost.eventgrid import invoke_event
from devhost.invoker import Invoker
from devhost.loader import IndexedFunction, load_functions
from devhost.queues import QueueListener, QueueStorage, encode_message, output_messages, validate_queue_name
from devhost.routes import RouteTemplate
from devhost.server import HostServer, Keys, host_status
from devhost.settings import ConfigError, apply_local_settings, load_host_config, resolve_setting_refs
from devhost.timers import TimerRunner, invoke_with_retries, parse_schedule, timer_request

log = logging.getLogger("devhost")

TRIGGERS = {"httpTrigger", "queueTrigger", "timerTrigger", "eventGridTrigger"}
BUILT_INTO_HOST = {"httpTrigger", "http"}  # everything else comes from the extension bundle
SHUTDOWN_GRACE = 10.0


def _new_key() -> str:
    return secrets.token_urlsafe(40)


class DevHost:
    """``async with DevHost(app_dir) as info:`` serves the app until the block ends.

    ``info`` is the ready line: ``{"url", "master_key", "function_key", "eventgrid_key", "functions",
    "errors", "disabled"}``. Settings from local.settings.json go into ``os.environ`` (where unset), as
    the app reads them from there: prefer the ``python -m devhost`` subprocess (DevHostProcess) in tests.
    """

    def __init__(
        self,
        app_dir: str | Path = ".",
        module: str = "function_app",
        *,
        port: int = 0,
        bind: str = "127.0.0.1",
        master_key: str | None = None,
        function_key: str | None = None,
        eventgrid_key: str | None = None,
    ) -> None:
        self.app_dir = Path(app_dir).resolve()
        self.module, self.port, self.bind = module, port, bind
        self._key_args = (master_key, function_key, eventgrid_key)
        self.invoker: Invoker | None = None
        self.storage: QueueStorage | None = None
        self.errors: dict[str, str] = {}
        self.disabled: list[str] = []
        self.info: dict[str, Any] = {}
        self._tasks: list[asyncio.Task] = []
        self._direct: set[asyncio.Task] = set()
        self._listeners: list[QueueListener] = []
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> dict[str, Any]:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> dict[str, Any]:
        apply_local_settings(self.app_dir, os.environ)
        master_key, function_key, eventgrid_key = self._key_args
        self.keys = Keys(
            master=master_key or os.environ.get("DEVHOST_MASTER_KEY") or _new_key(),
            function=function_key or os.environ.get("DEVHOST_FUNCTION_KEY") or _new_key(),
            eventgrid=eventgrid_key or os.environ.get("DEVHOST_EVENTGRID_KEY") or None,
        )
        self.config = load_host_config(self.app_dir)
        functions = [fn for fn in load_functions(self.app_dir, self.module) if self._usable(fn)]
        self.functions = {fn.name: fn for fn in functions}
        self.storage = QueueStorage()
        self.invoker = Invoker(self.app_dir, self.config.function_timeout, self._flush_output)
        self.started = time.monotonic()
        server = HostServer(
            functions,
            self.keys,
            self.invoker,
            self.config.route_prefix,
            self._invoke_direct,
            lambda: host_status(self.started, self.config.extension_bundle),
        )
        self._runner = web.AppRunner(server.web_app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.bind, self.port, shutdown_timeout=1.0)
        await site.start()
        port = site.port  # the real port when 0 was asked for
        url = f"http://{self.bind}:{port}"
        for fn in functions:
            if fn.trigger_type == "queueTrigger":
                listener = QueueListener(
                    fn, self._queue_name(fn.trigger), self.storage, self.config.queues, self.invoker
                )
                self._listeners.append(listener)
                self._tasks.append(asyncio.create_task(listener.run(), name=f"queue:{fn.name}"))
            elif fn.trigger_type == "timerTrigger":
                runner = TimerRunner(
                    fn, parse_schedule(resolve_setting_refs(fn.trigger["schedule"])), self.invoker
                )
                self._tasks.append(asyncio.create_task(runner.run(), name=f"timer:{fn.name}"))
        self.info = {
            "url": url,
            "master_key": self.keys.master,
            "function_key": self.keys.function,
            "eventgrid_key": self.keys.eventgrid,
            "functions": [self._describe(fn, url, server) for fn in functions],
            "errors": self.errors,
            "disabled": self.disabled,
        }
        self._log_functions()
        return self.info

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # Let running invocations (and the completion of their queue messages) finish.
        pending = set(self._direct).union(*(listener.processing for listener in self._listeners))
        if pending:
            await asyncio.wait(pending, timeout=SHUTDOWN_GRACE)
        if self.invoker is not None:
            await self.invoker.drain(SHUTDOWN_GRACE)
        if self._runner is not None:
            await self._runner.cleanup()
        if self.storage is not None:
            await self.storage.close()

    # -- indexing checks ----------------------------------------------------------------------------------

    def _usable(self, fn: IndexedFunction) -> bool:
        """Per-function problems make the host skip that function (and log it) but keep the others."""
        if os.environ.get(f"AzureWebJobs.{fn.name}.Disabled", "").lower() in ("true", "1"):
            self.disabled.append(fn.name)
            return False
        try:
            self._check(fn)
        except (ConfigError, ValueError) as error:
            self.errors[fn.name] = str(error)
            log.error("The '%s' function is in error: %s", fn.name, error)
            return False
        return True

    def _check(self, fn: IndexedFunction) -> None:
        types = {b["type"] for b in fn.bindings}
        if self.config.extension_bundle is None and types - BUILT_INTO_HOST:
            missing = ", ".join(f"'{t}'" for t in sorted(types - BUILT_INTO_HOST))
            raise ConfigError(
                f"The binding type(s) {missing} are not registered. Please ensure the type is correct and the "
                "binding extension is installed (host.json has no extensionBundle)."
            )
        if fn.trigger_type not in TRIGGERS:
            raise ConfigError(f"devhost does not emulate '{fn.trigger_type}' triggers")
        if fn.extra_inputs:
            raise ConfigError(f"devhost does not emulate '{fn.extra_inputs[0]['type']}' input bindings")
        for binding in fn.outputs + ([fn.return_binding] if fn.return_binding else []):
            if binding["type"] == "queue":
                self._queue_name(binding)
                QueueStorage.connection_string(binding.get("connection"))
            elif binding["type"] != "http":
                log.warning(
                    "devhost does not emulate '%s' output bindings: values set on '%s' of '%s' are dropped",
                    binding["type"],
                    binding["name"],
                    fn.name,
                )
        if fn.trigger_type == "queueTrigger":
            self._queue_name(fn.trigger)
            QueueStorage.connection_string(fn.trigger.get("connection"))
        elif fn.trigger_type == "timerTrigger":
            parse_schedule(resolve_setting_refs(fn.trigger["schedule"]))
        elif fn.trigger_type == "httpTrigger":
            route = RouteTemplate.compile(fn.trigger.get("route") or fn.name).template.strip("/").lower()
            if not self.config.route_prefix and route.split("/")[0] in ("admin", "runtime"):
                raise ConfigError("The specified route conflicts with one or more built in routes.")

    @staticmethod
    def _queue_name(binding: dict) -> str:
        return validate_queue_name(resolve_setting_refs(binding["queueName"]))

    # -- outputs and direct invocation ---------------------------------------------------------------------

    async def _flush_output(self, fn: IndexedFunction, binding: dict, datum: meta.Datum) -> None:
        if binding["type"] != "queue":
            return  # warned about at start-up
        assert self.storage is not None  # set by start(), before the invoker that calls this exists
        encoding = self.config.queues.message_encoding
        texts = [encode_message(message, encoding) for message in output_messages(datum)]
        await self.storage.send(binding.get("connection"), self._queue_name(binding), texts)

    def _invoke_direct(self, fn: IndexedFunction, data: Any) -> None:
        """Admin API invocation (``POST /admin/functions/<name>``), run in the background."""
        task = asyncio.create_task(self._run_direct(fn, data))
        self._direct.add(task)
        task.add_done_callback(self._direct.discard)

    async def _run_direct(self, fn: IndexedFunction, data: Any) -> None:
        reason = "This function was programmatically called via the host APIs."
        assert self.invoker is not None  # set by start(), before the server that calls this exists
        if fn.trigger_type == "timerTrigger":
            await invoke_with_retries(self.invoker, fn, timer_request(None, past_due=False), reason)
        elif fn.trigger_type == "eventGridTrigger":
            await invoke_event(self.invoker, fn, json.loads(data) if isinstance(data, str) else data, reason)
        elif fn.trigger_type == "queueTrigger":
            text = data if isinstance(data, str) else json.dumps(data)
            message = QueueMessageInConverter.decode(meta.Datum(text, "string"), trigger_metadata={})
            await self.invoker.invoke(fn, message, reason)
        else:
            await self.invoker.invoke(fn, data, reason)

    # -- reporting ------------------------------------------------------------------------------------

    def _describe(self, fn: IndexedFunction, url: str, server: HostServer) -> dict[str, Any]:
        trigger = fn.trigger
        entry: dict[str, Any] = {"name": fn.name, "trigger": fn.trigger_type}
        if fn.trigger_type == "httpTrigger":
            entry.update(
                url=server.invoke_url(url, fn),
                methods=sorted(m.upper() for m in trigger.get("methods") or []) or None,
                authLevel=str(trigger.get("authLevel", "FUNCTION")).lower(),
            )
        elif fn.trigger_type == "eventGridTrigger":
            entry["url"] = server.invoke_url(url, fn)
        elif fn.trigger_type == "queueTrigger":
            entry["queueName"] = self._queue_name(trigger)
        elif fn.trigger_type == "timerTrigger":
            entry["schedule"] = resolve_setting_refs(trigger["schedule"])
        return entry

    def _log_functions(self) -> None:
        lines = ["Functions:"]
        for entry in self.info["functions"]:
            if entry["trigger"] == "httpTrigger":
                lines.append(f"  {entry['name']}: [{','.join(entry['methods'] or ['ANY'])}] {entry['url']}")
            else:
                detail = entry.get("url") or entry.get("queueName") or entry.get("schedule") or ""
                lines.append(f"  {entry['name']}: {entry['trigger']} {detail}".rstrip())
        log.info("\n".join(lines))
