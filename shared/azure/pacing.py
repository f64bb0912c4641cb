"""Client-side pacing to the services' rate limits: one gate per service and key (ARM: subscription and
operation kind; Graph: exomi's application; Automation: the account's imports or jobs), shared by every
request of the process.

A 429 with ``Retry-After: N`` holds every request waiting on that gate for N seconds, not only the one
that was refused (no thundering herd when the wait ends): after it, one request goes first and the
number in flight grows by one with each success, so that a gate that was refused probes its way back
instead of sending the whole backlog at once. The rate headers narrow the gate before a 429 comes:
ARM's ``x-ms-ratelimit-remaining-*`` (tokens left in the bucket) caps the requests in flight, Graph's
``x-ms-throttle-limit-percentage`` (more than 80 % of the limit used) lets one through at a time. After
a hold, the gate lets through half as many as got through before the 429 that caused it, then one at a
time until the next 429 (or a success that shows more room): the requests in flight when the limit is
reached are what get refused, so few are in flight by then. Quotas published per
Automation account (module imports, new jobs) are also kept on the client side, as token buckets.

Several instances do not coordinate: each backs off on the headers it gets (docs/OPERATIONS.md).

``Limiter`` is the rule, pure and driven by a clock it is given; ``Pacer`` waits on it in asyncio;
``PacingPolicy`` (azure-core, every attempt of an ARM SDK call) and ``PacedTransport`` (httpx, under
msgraph's middleware, so its retries pass through it too) apply it to the requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import AsyncHTTPPolicy

# After a 429 the gate admits one request, then one more in flight per success, up to this many; from
# there on it is open (no cap) until the next 429 or rate header narrows it.
OPEN_AT = 32
# Quotas per Automation account (docs: "Azure Automation limits"): 5 module imports and 100 new jobs every
# 30 seconds. Kept on the client side as token buckets (size, refill per second).
AUTOMATION_QUOTAS: dict[str, tuple[float, float]] = {
    "automation-imports": (5.0, 5 / 30),
    "automation-jobs": (100.0, 100 / 30),
}
# A gate that saw no 429 for this long forgets what it learned (seconds).
CALM_AFTER = 30.0
# Without a Retry-After, a 429 holds the gate this long (seconds).
DEFAULT_HOLD = 1.0


@dataclass
class Gate:
    """What one gate knows: until when it is held, how many requests may be in flight (None: no cap),
    how many are, and a token bucket for a published quota (None: none)."""

    blocked_until: float = 0.0
    window: int | None = None
    in_flight: int = 0
    bucket_size: float | None = None
    refill: float = 0.0
    tokens: float = 0.0
    updated: float = 0.0
    throttled: int = 0  # 429s this gate saw
    # Learned from the last hold: half of how many requests got through between the end of the hold
    # before it and its 429 (what the service grants per hold, roughly). After a hold, once that many
    # went again, the rest go one at a time until the next 429 or a success shows there is room.
    learned: int | None = None
    refused_at: float = 0.0  # when the last 429 came
    sent: int = 0  # requests let through since the last hold ended
    passed: int = 0  # of them, answered without a 429


@dataclass
class Limiter:
    """The pacing rule of one process, on the clock it is given (seconds, monotonic)."""

    clock: Callable[[], float] = time.monotonic
    quotas: Mapping[str, tuple[float, float]] = field(default_factory=lambda: dict(AUTOMATION_QUOTAS))
    gates: dict[str, Gate] = field(default_factory=dict)

    def gate(self, key: str) -> Gate:
        gate = self.gates.get(key)
        if gate is None:
            gate = Gate()
            quota = self.quotas.get(key.split(":", 1)[0])
            if quota is not None:
                gate.bucket_size, gate.refill = quota
                gate.tokens, gate.updated = quota[0], self.clock()
            self.gates[key] = gate
        return gate

    def try_acquire(self, key: str) -> float:
        """0.0: the request may go now (it is counted in flight until ``release``). Otherwise the seconds
        to wait before asking again; ``math.inf``: until another request of the gate is released."""
        gate = self.gate(key)
        now = self.clock()
        if now < gate.blocked_until:
            return gate.blocked_until - now
        cap = gate.window
        if gate.learned is not None and gate.sent >= gate.learned:
            cap = 1
        if cap is not None and gate.in_flight >= cap:
            return math.inf
        if gate.bucket_size is not None:
            gate.tokens = min(gate.bucket_size, gate.tokens + (now - gate.updated) * gate.refill)
            gate.updated = now
            if gate.tokens < 1.0:
                return (1.0 - gate.tokens) / gate.refill
            gate.tokens -= 1.0
        gate.in_flight += 1
        gate.sent += 1
        return 0.0

    def release(self, key: str, status: int | None, headers: Mapping[str, str] | None = None) -> None:
        """A request of the gate got its answer (``status`` None: none came); what the answer says about
        the limit narrows or widens the gate."""
        gate = self.gate(key)
        gate.in_flight = max(0, gate.in_flight - 1)
        headers = headers or {}
        if status == 429:
            gate.throttled += 1
            gate.refused_at = self.clock()
            hold = retry_after(headers, self.clock)
            gate.blocked_until = max(
                gate.blocked_until, self.clock() + (DEFAULT_HOLD if hold is None else hold)
            )
            if gate.sent:  # the first 429 of a hold: half of what got through since the last one
                gate.learned = max(1, gate.passed // 2)
            gate.sent = gate.passed = 0
            gate.window = 1
            if gate.bucket_size is not None:
                gate.tokens = 0.0
                gate.updated = self.clock()
            return
        if status is None or status >= 500:
            return
        gate.passed += 1
        if gate.learned is not None and self.clock() - gate.refused_at > CALM_AFTER:
            gate.learned = gate.window = None  # no 429 for a while: the limit is far again
        remaining = _remaining(headers)
        used = _used_fraction(headers)
        if remaining is not None and remaining < OPEN_AT:
            gate.window = max(1, remaining)
        elif used is not None and used >= 0.8:
            gate.window = 1  # the last fifth of the limit: one at a time
        elif gate.window is not None:
            gate.window = None if gate.window + 1 >= OPEN_AT else gate.window + 1


def retry_after(headers: Mapping[str, str], clock: Callable[[], float] | None = None) -> float | None:
    """Seconds from ``Retry-After`` (a number, or an HTTP date), or None."""
    value = _header(headers, "retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value


def _remaining(headers: Mapping[str, str]) -> int | None:
    """The fewest tokens an ARM answer says are left (x-ms-ratelimit-remaining-subscription-reads, ...)."""
    left = [
        int(v)
        for k, v in headers.items()
        if k.lower().startswith("x-ms-ratelimit-remaining-") and str(v).strip().isdigit()
    ]
    return min(left) if left else None


def _used_fraction(headers: Mapping[str, str]) -> float | None:
    value = _header(headers, "x-ms-throttle-limit-percentage")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


# ------------------------------------------------------------------------------------ which gate


_SUBSCRIPTION = re.compile(r"^/subscriptions/([^/]+)", re.IGNORECASE)
_ACCOUNT = re.compile(
    r"^(/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft\.automation/automationaccounts/[^/]+)"
    r"(/.*)?$",
    re.IGNORECASE,
)
_IMPORT = re.compile(r"^/(modules/[^/]+|runtimeenvironments/[^/]+/packages/[^/]+)$", re.IGNORECASE)
_JOB = re.compile(r"^/jobs/[^/]+$", re.IGNORECASE)
_ARM_KIND = {"GET": "reads", "HEAD": "reads", "DELETE": "deletes"}


def arm_key(method: str, path: str) -> str:
    """The gate of an ARM request: a module or package import, or a new job, of an Automation account
    (their per-account quotas), else the subscription's reads, writes or deletes (ARM's buckets)."""
    method = method.upper()
    account = _ACCOUNT.match(path)
    if account and method == "PUT" and account.group(2):
        if _IMPORT.match(account.group(2)):
            return f"automation-imports:{account.group(1).lower()}"
        if _JOB.match(account.group(2)):
            return f"automation-jobs:{account.group(1).lower()}"
    subscription = _SUBSCRIPTION.match(path)
    where = subscription.group(1).lower() if subscription else "tenant"
    return f"arm:{where}:{_ARM_KIND.get(method, 'writes')}"


GRAPH_KEY = "graph"


# ------------------------------------------------------------------------------------ asyncio


class Pacer:
    """Waits on a ``Limiter`` in asyncio: every request of a process goes through one."""

    def __init__(self, limiter: Limiter | None = None) -> None:
        self.limiter = limiter or Limiter()
        self._released: dict[str, asyncio.Event] = {}

    async def acquire(self, key: str) -> None:
        while True:
            wait = self.limiter.try_acquire(key)
            if wait <= 0:
                return
            event = self._released.setdefault(key, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), None if math.isinf(wait) else wait)

    def release(self, key: str, status: int | None, headers: Mapping[str, str] | None = None) -> None:
        self.limiter.release(key, status, headers)
        event = self._released.pop(key, None)
        if event is not None:
            event.set()  # every waiter looks again; those still held wait on a new event

    def throttled(self) -> dict[str, int]:
        """429s seen per gate (for logs and benchmarks)."""
        return {key: gate.throttled for key, gate in self.limiter.gates.items() if gate.throttled}


class PacingPolicy(AsyncHTTPPolicy[Any, Any]):
    """azure-core policy (placed after the retry policy: every attempt passes it) that waits for the
    request's gate and tells it what the answer said."""

    def __init__(self, pacer: Pacer) -> None:
        super().__init__()
        self.pacer = pacer

    async def send(self, request: PipelineRequest[Any]) -> PipelineResponse[Any, Any]:
        url = httpx.URL(request.http_request.url)
        key = arm_key(request.http_request.method, url.path)
        await self.pacer.acquire(key)
        status: int | None = None
        headers: Mapping[str, str] | None = None
        try:
            response = await self.next.send(request)
            status, headers = response.http_response.status_code, response.http_response.headers
            return response
        finally:
            self.pacer.release(key, status, headers)


class PacedTransport(httpx.AsyncBaseTransport):
    """httpx transport (under msgraph's middleware: its retries pass through it) for Microsoft Graph."""

    def __init__(self, inner: httpx.AsyncBaseTransport, pacer: Pacer, key: str = GRAPH_KEY) -> None:
        self.inner = inner
        self.pacer = pacer
        self.key = key

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self.pacer.acquire(self.key)
        status: int | None = None
        headers: Mapping[str, str] | None = None
        try:
            response = await self.inner.handle_async_request(request)
            status, headers = response.status_code, response.headers
            return response
        finally:
            self.pacer.release(self.key, status, headers)

    async def aclose(self) -> None:
        await self.inner.aclose()
