"""Run one function invocation the way the Python worker does.

Arguments: the trigger value (already decoded with the SDK's converter), one ``Out`` per output binding,
and ``context`` when the function declares it. ``async def`` functions run on the host's event loop,
plain functions in a thread pool sized like the worker's (``PYTHON_THREADPOOL_THREAD_COUNT``). After
the call, output values and the return value are encoded with the SDK's converters, exactly where the
worker encodes them, and the output bindings are flushed before the invocation counts as succeeded.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions import _abc, meta

from devhost.loader import IndexedFunction

log = logging.getLogger("devhost")

# (function, output binding, encoded value) -> flushed to the service (e.g. a queue message)
OutputSink = Callable[[IndexedFunction, dict, meta.Datum], Awaitable[None]]


class Out(func.Out):
    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


class _TraceContext(_abc.TraceContext):
    def __init__(self, trace_parent: str) -> None:
        self._trace_parent = trace_parent

    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return self._trace_parent

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _RetryContext(_abc.RetryContext):
    def __init__(self, retry_count: int, max_retry_count: int) -> None:
        self._retry_count, self._max_retry_count = retry_count, max_retry_count

    @property
    def retry_count(self) -> int:
        return self._retry_count

    @property
    def max_retry_count(self) -> int:
        return self._max_retry_count

    @property
    def exception(self) -> Any:
        return None


class InvocationContext(func.Context):
    def __init__(self, invocation_id: str, function_name: str, directory: str, retry: _RetryContext) -> None:
        self._invocation_id, self._function_name, self._directory = invocation_id, function_name, directory
        self._retry = retry
        self._thread_local = threading.local()
        self._trace = _TraceContext(f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01")

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return self._thread_local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._directory

    @property
    def trace_context(self) -> _abc.TraceContext:
        return self._trace

    @property
    def retry_context(self) -> _abc.RetryContext:
        return self._retry


@dataclass
class InvocationResult:
    invocation_id: str
    error: BaseException | None = None
    return_value: meta.Datum | None = None
    outputs: list[tuple[dict, meta.Datum]] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.error is None


def encode(binding_type: str, value: Any) -> meta.Datum | None:
    """The worker's ``get_datum``: the SDK converter for the binding type, or a TypeError. None for a
    binding type the SDK has no converter for (the worker's generic binding; devhost drops those)."""
    converter = meta.get_binding_registry().get(binding_type)
    if converter is None:
        return None
    try:
        return converter.encode(value, expected_type=None)
    except NotImplementedError:
        raise TypeError(
            f'unable to encode outgoing TypedData: unsupported type "{binding_type}" '
            f'for Python type "{type(value).__name__}"'
        ) from None


def _thread_count() -> int | None:
    # The worker's default on Python >= 3.9 is the ThreadPoolExecutor default (None).
    configured = os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT", "").strip()
    return int(configured) if configured else None


class Invoker:
    def __init__(self, app_dir: Path, function_timeout: float | None, output_sink: OutputSink) -> None:
        self.app_dir = str(app_dir)
        self.function_timeout = function_timeout
        self.output_sink = output_sink
        self.executor = ThreadPoolExecutor(max_workers=_thread_count(), thread_name_prefix="devhost-worker")
        self.in_flight: set[asyncio.Task] = set()

    async def invoke(
        self, fn: IndexedFunction, trigger_value: Any, reason: str, retry_count: int = 0
    ) -> InvocationResult:
        """Run ``fn`` once; never raises for failures of the function itself."""
        task = asyncio.ensure_future(self._invoke(fn, trigger_value, reason, retry_count))
        self.in_flight.add(task)
        try:
            return await asyncio.shield(task)  # a cancelled caller (client gone) does not abort the function
        finally:
            if task.done():
                self.in_flight.discard(task)
            else:
                task.add_done_callback(self.in_flight.discard)

    async def _invoke(
        self, fn: IndexedFunction, trigger_value: Any, reason: str, retry_count: int
    ) -> InvocationResult:
        result = InvocationResult(str(uuid.uuid4()))
        log.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", fn.name, reason, result.invocation_id)
        started = time.monotonic()
        try:
            await self._run(fn, trigger_value, result, retry_count)
        except Exception as error:
            result.error = error
            log.error(
                "Executed 'Functions.%s' (Failed, Id=%s)", fn.name, result.invocation_id, exc_info=error
            )
        else:
            log.info(
                "Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)",
                fn.name,
                result.invocation_id,
                (time.monotonic() - started) * 1000,
            )
        return result

    async def _run(
        self, fn: IndexedFunction, trigger_value: Any, result: InvocationResult, retry_count: int
    ) -> None:
        args: dict[str, Any] = {fn.trigger["name"]: trigger_value}
        outs = {b["name"]: Out() for b in fn.outputs}
        args.update(outs)
        context = InvocationContext(
            result.invocation_id, fn.name, self.app_dir, _RetryContext(retry_count, _max_retries(fn))
        )
        if fn.requires_context:
            args["context"] = context
        if fn.is_async:
            call = fn.user_function(**args)
        else:
            call = asyncio.get_running_loop().run_in_executor(
                self.executor, contextvars.copy_context().run, _run_sync, fn.user_function, args, context
            )
        try:
            value = await asyncio.wait_for(call, self.function_timeout)
        except TimeoutError:
            # The real host cancels the invocation and restarts the worker; a thread cannot be killed here.
            raise TimeoutError(
                f"Timeout value of {self.function_timeout}s exceeded by function 'Functions.{fn.name}' "
                f"(Id: '{result.invocation_id}')."
            ) from None
        if value is not None and fn.return_binding is None:
            raise RuntimeError(f"function {fn.name!r} without a $return binding returned a non-None value")
        for binding in fn.outputs:
            output = outs[binding["name"]].get()
            datum = encode(binding["type"], output) if output is not None else None
            if datum is not None:
                result.outputs.append((binding, datum))
        if fn.return_binding is not None:
            result.return_value = encode(fn.return_binding["type"], value)
            if fn.return_binding["type"] != "http" and result.return_value is not None:
                result.outputs.append((fn.return_binding, result.return_value))
        for binding, datum in result.outputs:
            await self.output_sink(fn, binding, datum)

    async def drain(self, grace: float) -> None:
        """Wait for running invocations (graceful shutdown), then release the thread pool."""
        if self.in_flight:
            await asyncio.wait(set(self.in_flight), timeout=grace)
        self.executor.shutdown(wait=False, cancel_futures=True)


def _run_sync(user_function: Callable, args: dict, context: InvocationContext) -> Any:
    context.thread_local_storage.invocation_id = context.invocation_id
    return user_function(**args)


def _max_retries(fn: IndexedFunction) -> int:
    return int((fn.retry_policy or {}).get("max_retry_count", 0))
