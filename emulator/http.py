"""HTTP plumbing shared by every emulated service: error envelopes, JSON responses, the request log
and fault injection."""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from emulator.tenant import iso

JSON = "application/json"
GRAPH_JSON = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
)


class ServiceError(Exception):
    """Raised by handlers; rendered in the error shape of the service that raised it."""

    def __init__(
        self, status: int, code: str, message: str, *, target: str | None = None, headers: dict | None = None
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.target = target
        self.headers = headers or {}


class ArmError(ServiceError):
    def response(self) -> web.Response:
        body = {
            "error": {
                "code": self.code,
                "message": self.message,
                "target": self.target,
                "details": [],
                "additionalInfo": [],
            }
        }
        return json_response(body, self.status, headers=self.headers)


class GraphError(ServiceError):
    def response(self, request_id: str | None = None, client_request_id: str | None = None) -> web.Response:
        request_id = request_id or str(uuid.uuid4())
        body = {
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {
                    "date": iso(time.time())[:19],
                    "request-id": request_id,
                    "client-request-id": client_request_id or request_id,
                },
            }
        }
        headers = {
            "request-id": request_id,
            "client-request-id": client_request_id or request_id,
            **self.headers,
        }
        return json_response(body, self.status, headers=headers, content_type=GRAPH_JSON)


def json_response(
    body: Any, status: int = 200, *, headers: dict | None = None, content_type: str = JSON
) -> web.Response:
    return web.Response(
        body=json.dumps(body).encode(),
        status=status,
        headers={"Content-Type": content_type, **(headers or {})},
    )


async def read_json(request: web.Request, error_cls: type[ServiceError]) -> Any:
    raw = await request.read()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        if error_cls is GraphError:
            raise GraphError(
                400,
                "BadRequest",
                "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
            ) from exc
        raise ArmError(
            400,
            "InvalidRequestContent",
            f"The request content was invalid and could not be deserialized: '{exc}'.",
        ) from exc


def service_of(path: str) -> str:
    lower = path.lower()
    if lower.startswith("/v1.0/") or lower == "/v1.0" or lower.startswith("/beta/"):
        return "graph"
    if lower.startswith("/_control"):
        return "control"
    if lower.startswith("/msi/") or lower.startswith("/metadata/identity"):
        return "identity"
    return "arm"


# --------------------------------------------------------------------------------------------------
# Request log


@dataclass
class LogEntry:
    time: str
    service: str
    method: str
    path: str
    query: str
    status: int
    duration_ms: float
    caller_id: str | None = None
    caller_name: str | None = None
    client_request_id: str | None = None
    fault: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class RequestLog:
    entries: list[LogEntry] = field(default_factory=list)

    def add(self, entry: LogEntry) -> None:
        self.entries.append(entry)

    def clear(self) -> None:
        self.entries.clear()


# --------------------------------------------------------------------------------------------------
# Fault injection


@dataclass
class FaultRule:
    """One injected fault: matched by method and a regular expression over the path (case-insensitive).

    ``kind`` is ``status`` (answer ``status`` with the service's error shape; 429 adds Retry-After),
    ``drop`` (close the connection without an answer) or ``latency`` (delay, then serve normally).
    ``count`` limits how often it fires (None: always); ``probability`` makes it random.
    """

    id: str
    path: str
    kind: str = "status"
    method: str | None = None
    status: int = 503
    code: str | None = None
    message: str | None = None
    retry_after: int | None = None
    latency_ms: int = 0
    count: int | None = None
    probability: float = 1.0
    fired: int = 0
    _pattern: re.Pattern | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("status", "drop", "latency"):
            raise ValueError("kind must be one of status, drop, latency")
        self._pattern = re.compile(self.path, re.IGNORECASE)

    def matches(self, method: str, path: str) -> bool:
        if self.count is not None and self.fired >= self.count:
            return False
        if self.method and self.method.upper() != method.upper():
            return False
        if not self._pattern.search(path):
            return False
        return random.random() < self.probability

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


_DEFAULT_FAULT_TEXT = {
    ("arm", 429): (
        "TooManyRequests",
        "The request is being throttled as the limit has been reached for operation type - Write.",
    ),
    ("arm", 500): (
        "InternalServerError",
        "Encountered internal server error. Diagnostic information: timestamp '', subscription id ''.",
    ),
    ("arm", 503): (
        "ServiceUnavailable",
        "The server (leased) is currently unable to handle the request due to a temporary overloading or maintenance.",
    ),
    ("graph", 429): ("TooManyRequests", "Too many requests. Please try again later."),
    ("graph", 500): ("generalException", "General exception while processing"),
    ("graph", 503): ("serviceNotAvailable", "Service is temporarily unavailable. Please try again later."),
}


def fault_response(rule: FaultRule, service: str) -> web.Response:
    code, message = _DEFAULT_FAULT_TEXT.get(
        (service, rule.status), ("InjectedFault", f"Injected fault {rule.status}.")
    )
    headers = {}
    if rule.retry_after is not None or rule.status == 429:
        headers["Retry-After"] = str(rule.retry_after if rule.retry_after is not None else 1)
    error_cls = GraphError if service == "graph" else ArmError
    return error_cls(rule.status, rule.code or code, rule.message or message, headers=headers).response()


class FaultInjector:
    def __init__(self) -> None:
        self.rules: list[FaultRule] = []

    def add(self, spec: dict[str, Any]) -> FaultRule:
        allowed = {
            "path",
            "kind",
            "method",
            "status",
            "code",
            "message",
            "retry_after",
            "latency_ms",
            "count",
            "probability",
        }
        unknown = set(spec) - allowed
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
        if "path" not in spec:
            raise ValueError("a fault needs 'path' (a regular expression over the request path)")
        rule = FaultRule(id=str(uuid.uuid4()), **spec)
        self.rules.append(rule)
        return rule

    def pick(self, method: str, path: str) -> FaultRule | None:
        for rule in self.rules:
            if rule.matches(method, path):
                rule.fired += 1
                return rule
        return None

    async def apply(self, request: web.Request) -> tuple[web.StreamResponse | None, str | None]:
        """Returns (response to send instead, fault description) or (None, None)."""
        rule = self.pick(request.method, request.path)
        if rule is None:
            return None, None
        if rule.kind == "latency":
            await asyncio.sleep(rule.latency_ms / 1000)
            return None, f"latency {rule.latency_ms}ms"
        if rule.kind == "drop":
            transport = request.transport
            if transport is not None:
                transport.abort()
            raise ConnectionResetError("fault injection: connection dropped")
        return fault_response(rule, service_of(request.path)), f"status {rule.status}"
