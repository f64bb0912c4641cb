"""Traces and metrics (OpenTelemetry), exported to Azure Monitor when the app has an Application Insights
connection string, and nothing at all when it has none.

Code everywhere else uses only the OpenTelemetry API through this module: ``span`` around an engine pass,
a step or a submission, and the ``count_*`` / ``record_*`` functions for metrics. Until ``configure``
installs providers, the API is its own no-op (no exporter, no buffers, no thread). ``configure`` does that
once per process: from the settings (``APPLICATIONINSIGHTS_CONNECTION_STRING``: the Azure Monitor
distro, imported only then), or with providers a caller hands it (tests: in-memory exporters) on the same
path. Azure SDK calls get their spans from azure-core's OpenTelemetry plugin, Microsoft Graph calls from
kiota's own instrumentation; both nest under the span that is current when the call is made.

Attributes are exomi's own dimensions (``exomi.*``: request id, target, step, outcome, channel, ticket
id, rule, ...). No token, claim, callback URL, key or header is ever put on a span or a metric. See
docs/OPERATIONS.md#telemetry for the names, the KQL and why the logs are not exported from here.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import re
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.errors import ExomiError
from shared.ids import parse_resource_id

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from shared.settings import AppInsightsSettings

log = logging.getLogger("exomi.telemetry")
P = ParamSpec("P")
R = TypeVar("R")

NAME = "exomi"
# The dimensions (span and metric attributes) exomi sets. Values are ids, names and outcomes; never secrets.
REQUEST_ID = "exomi.request_id"
OPERATION = "exomi.operation"  # provision, revoke
TARGET = "exomi.target"  # the target's ARM id
TARGET_KIND = "exomi.target_kind"
CHANNEL = "exomi.channel"  # tag, http, logicapps, ticket, cli, reconcile, expiry
TICKET_ID = "exomi.ticket_id"  # the request's external_reference (a ticket number)
STEP = "exomi.step"
OUTCOME = "exomi.outcome"  # a pass: the request's status after it; a step: done, waiting, failed
ACTION = "exomi.action"  # a step: changed, none
ERROR_CODE = "exomi.error_code"  # shared/errors.py codes
RULE = "exomi.rule"  # the policy rule that refused
FINDING_KIND = "exomi.finding_kind"  # extra-privilege, look-alike, unmanaged (shared/findings.py)
SEVERITY = "exomi.severity"
SERVICE = "exomi.service"  # the Azure service that answered 429
SOURCE = "exomi.source"  # where a finding was made: request, reconcile
HTTP_STATUS = "http.response.status_code"  # what the HTTP API answered

# W3C Trace Context "traceparent" (version-traceid-parentid-flags, lower-case hex).
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
# The span the next exomi span links to (continued(): the Functions host's invocation of the queue
# trigger, while the span's parent is whoever queued the work item).
_link_to: ContextVar[SpanContext | None] = ContextVar("exomi_telemetry_link_to", default=None)
_MAX_TEXT = 256  # a ticket id or target longer than this is cut (they are ids, not documents)

_tracer = trace.get_tracer(NAME)
_meter = metrics.get_meter(NAME)
# Instruments made from the API's proxy meter start forwarding once a provider is set (configure).
_requests = _meter.create_counter(
    "exomi.requests", unit="{request}", description="Requests that ended, by outcome (their final status)"
)
_step_duration = _meter.create_histogram(
    "exomi.step.duration", unit="s", description="How long one run of an engine step took"
)
_findings = _meter.create_counter(
    "exomi.findings",
    unit="{finding}",
    description="Privilege findings (extra privilege, look-alikes, unmanaged)",
)
_refusals = _meter.create_counter(
    "exomi.refusals", unit="{refusal}", description="Refused attempts, by policy rule and channel"
)
_throttled = _meter.create_counter(
    "exomi.throttled", unit="{response}", description="429 answers of an Azure service that reached exomi"
)

_lock = threading.Lock()
_configured: str | None = None  # "azure-monitor" or "providers", once configure has installed them


def configure(
    settings: AppInsightsSettings | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> bool:
    """Install the process's OpenTelemetry providers, once; returns whether telemetry is on.

    With ``settings`` (an Application Insights connection string): the Azure Monitor distro, tracing and
    metrics only. With providers (and no settings): those. With neither: nothing, and the API stays a
    no-op. A second call changes nothing (OpenTelemetry's global providers are set once per process)."""
    global _configured
    with _lock:
        if _configured is not None:
            return True
        if tracer_provider is not None or meter_provider is not None:
            if tracer_provider is not None:
                trace.set_tracer_provider(tracer_provider)
            if meter_provider is not None:
                metrics.set_meter_provider(meter_provider)
            _trace_azure_sdk()
            _sample(trace.get_tracer_provider())
            _configured = "providers"
            return True
        if settings is None:
            return False
        try:
            _configure_azure_monitor(settings)
        except Exception:  # noqa: BLE001 - telemetry that cannot start must not stop exomi's work
            log.exception("telemetry: the Azure Monitor exporter could not be set up; exomi runs without it")
            return False
        _sample(trace.get_tracer_provider())
        _configured = "azure-monitor"
        return True


def _sample(provider: object) -> None:
    """exomi's sampling policy on the SDK's provider (shared/telemetry_sampler.py); tracers made from
    it from now on use it (exomi's own and kiota's are made on their first span, after this)."""
    sampler = getattr(provider, "sampler", None)
    if sampler is None:
        return
    from shared.telemetry_sampler import WithoutKiotaInternals

    if not isinstance(sampler, WithoutKiotaInternals):
        provider.sampler = WithoutKiotaInternals(sampler)  # type: ignore[attr-defined]


def flush(timeout_seconds: float = 5.0) -> None:
    """Send what is buffered (the exomi command exits without the interpreter's shutdown hooks)."""
    if _configured is None:
        return
    for provider in (trace.get_tracer_provider(), metrics.get_meter_provider()):
        force_flush = getattr(provider, "force_flush", None)
        if force_flush is not None:
            force_flush(timeout_millis=int(timeout_seconds * 1000))


def _configure_azure_monitor(settings: AppInsightsSettings) -> None:
    # Only the exporters' resource detector that fits a Function app: the VM detector would ask the
    # instance metadata endpoint, which App Service does not have (and an admin's laptop may time out on).
    os.environ.setdefault("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", "azure_app_service")
    from azure.monitor.opentelemetry import configure_azure_monitor

    kwargs: dict[str, Any] = {}
    if settings.entra:
        # Application Insights with local authentication disabled takes only Entra tokens: the exporter
        # gets them with the app's managed identity (Monitoring Metrics Publisher on the resource).
        from azure.identity import ManagedIdentityCredential

        kwargs["credential"] = (
            ManagedIdentityCredential(client_id=settings.client_id)
            if settings.client_id
            else ManagedIdentityCredential()
        )
    configure_azure_monitor(
        connection_string=settings.connection_string.get_secret_value(),
        # The Functions host already sends the worker's log records (AppTraces), live metrics and
        # performance counters; exporting them here too would count everything twice.
        disable_logging=True,
        # Every trace (exomi's volume is small and each request matters); the default rate-limited
        # sampler can drop the first traces of a fresh instance. OTEL_TRACES_SAMPLER still overrides it.
        sampling_ratio=1.0,
        enable_live_metrics=False,
        enable_performance_counters=False,
        # Azure SDK calls only (azure-core's plugin); exomi uses none of the web frameworks or the sync
        # HTTP clients the distro would instrument by default.
        instrumentation_options={
            name: {"enabled": False}
            for name in ("django", "fastapi", "flask", "psycopg2", "requests", "urllib", "urllib3")
        },
        **kwargs,
    )
    log.info("telemetry: traces and metrics go to Application Insights")


def _trace_azure_sdk() -> None:
    """azure-core's OpenTelemetry plugin: a span per SDK call (what configure_azure_monitor also sets)."""
    from azure.core.settings import settings as azure_settings
    from azure.core.tracing.ext.opentelemetry_span import OpenTelemetrySpan

    azure_settings.tracing_implementation = OpenTelemetrySpan


def _clean(attributes: Mapping[str, Any]) -> dict[str, str | int | float | bool]:
    """Attributes OpenTelemetry takes: no None, enums as their values, long text cut."""
    cleaned: dict[str, str | int | float | bool] = {}
    for key, value in attributes.items():
        if value is None:
            continue
        if isinstance(value, bool | int | float):
            cleaned[key] = value
        else:
            cleaned[key] = str(getattr(value, "value", value))[:_MAX_TEXT]
    return cleaned


def request_attributes(record: Any) -> dict[str, Any]:
    """The dimensions of a request (a RequestRecord): id, operation, target, kind, channel, ticket id."""
    return {
        REQUEST_ID: record.id,
        OPERATION: record.operation,
        TARGET: record.target,
        TARGET_KIND: _kind_of(record.target),
        CHANNEL: record.channel,
        TICKET_ID: record.external_reference,
    }


@contextmanager
def span(name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[Span]:
    """A span, current within the block (what runs in it, Azure calls and tasks it starts, nests under
    it). An exception marks it failed with its error code, never its message (it may quote a URL)."""
    link = _link_to.get()
    unlinked = _link_to.set(None)  # only the first span of a continued() block carries the link
    try:
        with _tracer.start_as_current_span(
            name,
            kind=SpanKind.INTERNAL,
            attributes=_clean(attributes or {}),
            links=[Link(link)] if link is not None else None,
            record_exception=False,
            set_status_on_exception=False,
        ) as current:
            try:
                yield current
            except BaseException as error:
                code = str(getattr(error, "code", None) or type(error).__name__)
                rule = getattr(error, "rule", None)  # a PolicyRefusal
                annotate(current, {OUTCOME: "refused" if rule else "error", RULE: rule})
                failed(current, code)
                raise
    finally:
        _link_to.reset(unlinked)


def traced(
    name: str, dimensions: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """A coroutine function whose every call runs in a span ``name``: dimensions from its arguments
    (``dimensions`` of them by parameter name; a ``channel`` argument is one), then from the request it
    returns (a RequestRecord, or a Submission's) with its status as the outcome."""

    def decorate(function: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        signature = inspect.signature(function)

        @functools.wraps(function)
        async def run(*args: P.args, **kwargs: P.kwargs) -> R:
            arguments = signature.bind_partial(*args, **kwargs).arguments
            attributes = dict(dimensions(arguments)) if dimensions is not None else {}
            if "channel" in arguments:
                attributes[CHANNEL] = arguments["channel"]
            with span(name, attributes) as current:
                result = await function(*args, **kwargs)
                record = getattr(result, "request", result)
                if hasattr(record, "status") and hasattr(record, "external_reference"):
                    annotate(current, {**request_attributes(record), OUTCOME: record.status})
                return result

        return run

    return decorate


@contextmanager
def invoked(trace_parent: str | None) -> Iterator[None]:
    """Within the block, exomi's spans continue the trace of the Functions host's invocation (its W3C
    traceparent, ``context.trace_context``): in Application Insights the host's ``requests`` row of the
    invocation and exomi's spans are one operation. Nothing to do while telemetry is off."""
    if not trace_parent or _configured is None:
        yield
        return
    token = otel_context.attach(TraceContextTextMapPropagator().extract({"traceparent": trace_parent}))
    try:
        yield
    finally:
        otel_context.detach(token)


def traceparent() -> str | None:
    """The current span as a W3C traceparent, for a work item to carry to the queue worker (continued());
    None while telemetry is off or outside any span."""
    if _configured is None:
        return None
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent")


def valid_traceparent(value: object) -> str | None:
    """``value`` if it is a W3C traceparent, else None (a work item's field: never trusted as it is)."""
    return value if isinstance(value, str) and _TRACEPARENT.match(value) else None


@contextmanager
def continued(trace_parent: str | None) -> Iterator[None]:
    """Within the block, exomi's spans continue the trace of whoever queued the work item (its
    ``traceparent``: the HTTP submit, or the pass before it), so that a request and every pass of it are
    one operation in Application Insights. The first span of the block links to the span current on entry
    (the Functions host's invocation of the queue trigger, invoked()). Nothing to do while telemetry is off
    or the item carries no trace context."""
    if not trace_parent or _configured is None:
        yield
        return
    invocation = trace.get_current_span().get_span_context()
    token = otel_context.attach(TraceContextTextMapPropagator().extract({"traceparent": trace_parent}))
    linked = _link_to.set(invocation if invocation.is_valid else None)
    try:
        yield
    finally:
        _link_to.reset(linked)
        otel_context.detach(token)


def annotate(current: Span, attributes: Mapping[str, Any]) -> None:
    """More dimensions on a span, once they are known (a pass's outcome, a step's)."""
    if current.is_recording():
        current.set_attributes(_clean(attributes))


def failed(current: Span, code: str) -> None:
    current.set_attribute(ERROR_CODE, code)
    current.set_status(Status(StatusCode.ERROR, code))


def count_request(record: Any) -> None:
    """A request ended (succeeded, failed, revoked, cancelled, denied): one count by its outcome."""
    _requests.add(
        1,
        _clean(
            {
                OUTCOME: record.status,
                OPERATION: record.operation,
                CHANNEL: record.channel,
                TARGET_KIND: _kind_of(record.target),
            }
        ),
    )


def record_step(step: str, seconds: float, outcome: str, target_kind: str | None) -> None:
    _step_duration.record(seconds, _clean({STEP: step, OUTCOME: outcome, TARGET_KIND: target_kind}))


def count_findings(findings: list[Any], source: str) -> None:
    """Privilege findings (shared/findings.py Finding), by kind and severity."""
    for finding in findings:
        _findings.add(1, _clean({FINDING_KIND: finding.kind, SEVERITY: finding.severity, SOURCE: source}))


def count_refusal(rule: str, channel: Any, operation: str) -> None:
    _refusals.add(1, _clean({RULE: rule, CHANNEL: channel, OPERATION: operation}))


def count_throttled(service: str) -> None:
    _throttled.add(1, {SERVICE: service})


def _kind_of(target: str) -> str | None:
    """The target's kind (its ARM type), from a request's id as stored (validated when it was accepted)."""
    try:
        return parse_resource_id(target).kind.value
    except ExomiError:
        return None
