"""Telemetry (issue 12, item 4): a request sent to the HTTP API and carried to its end by the queue
worker, in this process, against the emulator and Azurite, with OpenTelemetry's in-memory exporters
installed through shared/telemetry.py's own ``configure``. A request is one trace: the API call, and
every work item after it (each carries the W3C traceparent of whoever queued it, also from another
process: the HTTP host and the queue worker); an engine pass has a span per step, with the documented dimensions, and the Azure calls nest under the
steps; the metrics count the request's outcome, the steps' durations and a refusal by its rule; and no
span or metric carries a token, the callback URL or the function key."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from aiohttp import web
from azure.storage.queue import QueueClient, TextBase64DecodePolicy
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from devhost.process import DevHostProcess
from emulator.tls import create_tls_files
from shared import runtime, telemetry, work_queue, worker
from shared.api.http import ApiRequest
from shared.api.routes import dispatch
from shared.azure.clients import GRAPH_MAX_RETRIES
from tests.support import polling
from tests.support.callback_receiver import CallbackReceiver
from tests.support.exomi import ROOT, ExomiRunner, policy_for
from tests.support.threaded_server import ThreadedServer

UAI_STEPS = {"identity", "principal", "exchange-sp", "app-role", "entra-role"}
TICKET = "CHG0012345"
FUNCTION_KEY = "fk-" + uuid.uuid4().hex  # what the Functions host would have checked


TEST_SIDE = "outside-exomi"


def outside_exomi():
    """The test's own Azure SDK calls (the admin's, the queue host's): traced too, under this span."""
    return trace.get_tracer("tests").start_as_current_span(TEST_SIDE)


class Capture(SpanProcessor):
    """Hands ended spans to the in-memory exporter while a test of this module looks (other tests in the
    same process leave nothing behind)."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.active = False

    def on_end(self, span: ReadableSpan) -> None:
        if self.active:
            self.exporter.export([span])


@dataclass
class Telemetry:
    capture: Capture
    reader: InMemoryMetricReader

    def spans(self) -> list[ReadableSpan]:
        """exomi's spans: those of the test's own SDK calls (under TEST_SIDE) left out."""
        spans = list(self.capture.exporter.get_finished_spans())
        outside_exomi = {s.context.trace_id for s in spans if s.name == TEST_SIDE}
        return [s for s in spans if s.context.trace_id not in outside_exomi]

    def points(self) -> dict[tuple[str, frozenset], float]:
        """Every metric point as (name, attributes) -> value: a sum's value, a histogram's count."""
        found: dict[tuple[str, frozenset], float] = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        value = getattr(point, "count", None)
                        found[(metric.name, frozenset(point.attributes.items()))] = (
                            value if value is not None else point.value
                        )
        return found


@pytest.fixture(scope="session")
def installed() -> Telemetry:
    """The process's providers, installed once (OpenTelemetry sets its global providers once)."""
    capture = Capture()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(capture)
    reader = InMemoryMetricReader()
    assert telemetry.configure(tracer_provider=tracer_provider, meter_provider=MeterProvider([reader]))
    return Telemetry(capture, reader)


@pytest.fixture
def observed(installed) -> Iterator[Telemetry]:
    installed.capture.exporter.clear()
    installed.capture.active = True
    yield installed
    installed.capture.active = False
    installed.capture.exporter.clear()


@pytest.fixture
def receiver(tmp_path) -> Iterator[CallbackReceiver]:
    receiver = CallbackReceiver(tmp_path / "receiver-tls").start()
    yield receiver
    receiver.stop()


@dataclass
class App:
    """exomi's settings in this process's environment (as the Functions host gives them to the worker)."""

    runner: ExomiRunner
    queue: QueueClient


@pytest.fixture
def ca_bundle(emulator, receiver, tmp_path) -> Path:
    """exomi trusts the callback receiver's CA through the setting that makes it trust the emulator's."""
    bundle = tmp_path / "ca-bundle.pem"
    bundle.write_text(Path(emulator.ca_bundle).read_text() + receiver.ca_cert.read_text())
    return bundle


@pytest.fixture
async def app(emulator, azurite, receiver, ca_bundle, tmp_path, monkeypatch) -> AsyncIterator[App]:
    netloc = urlsplit(receiver.base_url).netloc
    runner = ExomiRunner(emulator, azurite, policy=policy_for(emulator, callback_hosts=[netloc]))
    queue_name = "t" + uuid.uuid4().hex[:12]
    env = {**runner.env(), "EXOMI_CA_BUNDLE": str(ca_bundle), "EXOMI_QUEUE_NAME": queue_name}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no local.settings.json
    # The worker process's one ExomiApp (shared/runtime.py) is opened from these settings on first use.
    monkeypatch.setattr(runtime, "_app", None)
    monkeypatch.setattr(runtime, "_lock", None)
    queue = QueueClient.from_connection_string(
        azurite, queue_name, message_decode_policy=TextBase64DecodePolicy()
    )
    yield App(runner, queue)
    if runtime._app is not None:
        await runtime._app.close()
    queue.close()


def api_call(operation: str, body: dict[str, Any]) -> ApiRequest:
    """A call as the Functions host hands it over: the function key in the header and in ?code=."""
    return ApiRequest(
        method="POST",
        url=f"https://exomi.example.net/api/requests?code={FUNCTION_KEY}",
        headers={"content-type": "application/json", "x-functions-key": FUNCTION_KEY},
        query={"code": FUNCTION_KEY},
        body=json.dumps(body).encode(),
    )


async def work_until_ended(app: App, request_id: str, deadline_seconds: float = 60) -> dict[str, Any]:
    """Be the queue worker: each visible work item goes to shared.worker, as the host's trigger does."""
    deadline = time.monotonic() + deadline_seconds
    service = await runtime.exomi_service()
    while time.monotonic() < deadline:
        with outside_exomi():
            messages = list(app.queue.receive_messages(max_messages=4, visibility_timeout=30))
        for message in messages:
            await worker.process_work_item(message.content, message.dequeue_count)
            with outside_exomi():
                app.queue.delete_message(message)
        with outside_exomi():
            record = await service.find(request_id)
        if record is not None and not record.status.active:
            return record.model_dump(mode="json")
        await asyncio.sleep(0.05)
    raise AssertionError(f"request {request_id} did not end within {deadline_seconds}s")


def attribute_values(observed: Telemetry) -> list[str]:
    """Everything a span or a metric point carries as text: names, attributes, statuses, events."""
    values: list[str] = []
    for span in observed.spans():
        values += [span.name, str(span.status.description or "")]
        values += [f"{k}={v}" for k, v in (span.attributes or {}).items()]
        for event in span.events:
            values += [event.name] + [f"{k}={v}" for k, v in (event.attributes or {}).items()]
    for name, attributes in observed.points():
        values += [name] + [f"{k}={v}" for k, v in attributes]
    return values


def descendants(spans: list[ReadableSpan], root: ReadableSpan) -> list[ReadableSpan]:
    children = defaultdict(list)
    for span in spans:
        if span.parent is not None:
            children[span.parent.span_id].append(span)
    found, todo = [], [root]
    while todo:
        for child in children[todo.pop().context.span_id]:
            found.append(child)
            todo.append(child)
    return found


def delta(before: dict, after: dict, name: str, **attributes: str) -> float:
    key = (name, frozenset(attributes.items()))
    return after.get(key, 0) - before.get(key, 0)


async def test_a_request_is_traced_step_by_step_and_counted_without_secrets(
    emulator, targets, app, receiver, observed
):
    with outside_exomi():
        uai = targets.user_assigned_identity()
    callback_url = f"{receiver.base_url}/hooks/exomi?sig=s3cr3t-signature"
    before = observed.points()

    accepted = await dispatch(
        "create_request",
        api_call(
            "create_request",
            {
                "target": uai.id,
                "organization": emulator.organization,
                "channel": "ticket",
                "external_reference": TICKET,
                "callback_url": callback_url,
            },
        ),
    )
    assert accepted.status == 202, accepted.body
    request_id = accepted.body["id"]
    final = await work_until_ended(app, request_id)
    assert final["status"] == "succeeded", final
    receiver.wait_for_deliveries(1)

    spans = observed.spans()
    by_trace: dict[int, list[ReadableSpan]] = defaultdict(list)
    for span in spans:
        by_trace[span.context.trace_id].append(span)
    # One trace for the request: the API call is its root, and every work item continues it (the item
    # carries the W3C traceparent of whoever queued it: the submit, then the pass before); no Azure call
    # happens outside one of exomi's spans.
    roots = {trace: [s for s in members if s.parent is None] for trace, members in by_trace.items()}
    assert [[s.name for s in r] for r in roots.values()] == [["exomi.api create_request"]], roots
    (api_root,) = next(iter(roots.values()))
    works = sorted((s for s in spans if s.name == "exomi.work"), key=lambda s: s.start_time or 0)
    assert works and all(w.parent is not None and w.parent.is_remote for w in works)
    by_id = {s.context.span_id: s for s in spans}
    assert all(w.parent.span_id in by_id for w in works)  # type: ignore[union-attr]
    first_parent = by_id[works[0].parent.span_id]  # type: ignore[union-attr]
    assert first_parent in [api_root, *descendants(spans, api_root)] and first_parent not in works
    assert api_root.attributes["http.response.status_code"] == 202
    submit = next(s for s in descendants(spans, api_root) if s.name == "exomi.submit")
    assert {k: submit.attributes[k] for k in ("exomi.request_id", "exomi.channel", "exomi.ticket_id")} == {
        "exomi.request_id": request_id,
        "exomi.channel": "ticket",
        "exomi.ticket_id": TICKET,
    }
    assert submit.attributes["exomi.outcome"] == "queued"
    assert submit.attributes["exomi.target"] == final["target"]

    # Each work item's trace: the pass under it, every step a child of the pass with the dimensions.
    passes = [s for s in spans if s.name == "exomi.pass"]
    assert passes and all(p.attributes["exomi.request_id"] == request_id for p in passes)
    assert passes[-1].attributes["exomi.outcome"] == "succeeded"
    steps = [s for s in spans if s.name.startswith("exomi.step ")]
    pass_ids = {p.context.span_id for p in passes}
    assert all(s.parent is not None and s.parent.span_id in pass_ids for s in steps)
    done = {s.attributes["exomi.step"] for s in steps if s.attributes["exomi.outcome"] == "done"}
    assert done == UAI_STEPS
    for step in steps:
        assert step.name == f"exomi.step {step.attributes['exomi.step']}"
        assert step.attributes["exomi.request_id"] == request_id
        assert step.attributes["exomi.target"] == final["target"]
        assert step.attributes["exomi.target_kind"] == "Microsoft.ManagedIdentity/userAssignedIdentities"
        assert step.attributes["exomi.channel"] == "ticket"
        assert step.attributes["exomi.ticket_id"] == TICKET
        assert step.attributes["exomi.operation"] == "provision"
        if step.attributes["exomi.outcome"] == "done":
            assert step.attributes["exomi.action"] in ("changed", "none")

    # The Azure calls of a step are spans under it: ARM (azure-core) for the identity, Graph (kiota)
    # for the grant.
    def calls_under(step_name: str) -> list[str]:
        step = next(s for s in steps if s.attributes["exomi.step"] == step_name)
        return [
            str(s.attributes.get("url.full")) for s in descendants(spans, step) if "url.full" in s.attributes
        ]

    # One span per Graph call (kiota's own, with its URL and status), none of kiota's internal ones.
    graph_calls = [s for s in spans if s.attributes.get("url.full", "").startswith(emulator.graph_endpoint)]
    assert graph_calls and all(s.name.startswith("send_") for s in graph_calls)
    assert all(s.attributes["http.response.status_code"] < 500 for s in graph_calls)
    names = {s.name.split(" - ")[0] for s in spans}
    assert not names & {"RetryHandler_send", "get_http_response_message", "get_authorization_token"}, names

    arm_host = urlsplit(emulator.arm_endpoint).netloc
    graph_host = urlsplit(emulator.graph_endpoint).netloc
    assert any(arm_host in url and "userAssignedIdentities" in url for url in calls_under("identity"))
    assert any(graph_host in url and "appRoleAssignments" in url for url in calls_under("app-role"))

    after = observed.points()
    kind = "Microsoft.ManagedIdentity/userAssignedIdentities"
    assert (
        delta(
            before,
            after,
            "exomi.requests",
            **{
                "exomi.outcome": "succeeded",
                "exomi.operation": "provision",
                "exomi.channel": "ticket",
                "exomi.target_kind": kind,
            },
        )
        == 1
    )
    for name in UAI_STEPS:
        assert (
            delta(
                before,
                after,
                "exomi.step.duration",
                **{"exomi.step": name, "exomi.outcome": "done", "exomi.target_kind": kind},
            )
            >= 1
        ), name

    # No secret in any of it: tokens (the emulator's are JWTs), the managed identity endpoint's header,
    # the callback URL and its signature, the function key.
    values = attribute_values(observed)
    secrets = [
        "eyJ",
        emulator.identity_header,
        "s3cr3t-signature",
        f"{receiver.base_url}/hooks",
        FUNCTION_KEY,
    ]
    leaks = [(secret, v) for v in values for secret in secrets if secret in v]
    assert leaks == []


async def test_a_refusal_is_counted_by_its_rule_and_channel(emulator, targets, app, observed):
    with outside_exomi():
        uai = targets.user_assigned_identity()
    before = observed.points()
    refused = await dispatch(
        "create_request",
        api_call(
            "create_request",
            {
                "target": uai.id,
                "organization": emulator.organization,
                "role": "Global Administrator",
                "channel": "ticket",
                "external_reference": TICKET,
            },
        ),
    )
    assert refused.status == 403, refused.body
    rule = refused.body["error"]["rule"]
    after = observed.points()
    assert (
        delta(
            before,
            after,
            "exomi.refusals",
            **{"exomi.rule": rule, "exomi.channel": "ticket", "exomi.operation": "provision"},
        )
        == 1
    )
    submit = next(s for s in observed.spans() if s.name == "exomi.submit")
    assert submit.attributes["exomi.outcome"] == "refused"
    assert submit.attributes["exomi.rule"] == rule
    assert submit.attributes["exomi.error_code"] == "PolicyRefused"


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_without_a_connection_string_nothing_is_configured(tmp_path):
    """A fresh process, as a Function app without Application Insights: no exporter, no provider, the
    Azure Monitor distro not even imported, azure-core's tracing left off."""
    code = """
import sys
from pathlib import Path
from opentelemetry import metrics, trace
from azure.core.settings import settings as azure_settings
from shared import telemetry
from shared.settings import Settings

settings = Settings.load({}, local_settings=Path("none.json"))
assert settings.app_insights is None
assert telemetry.configure(settings.app_insights) is False
with telemetry.span("exomi.pass", {telemetry.REQUEST_ID: "r"}) as span:
    assert not span.is_recording()
assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"
assert type(metrics.get_meter_provider()).__name__ == "_ProxyMeterProvider"
assert azure_settings.tracing_implementation() is None
assert not [m for m in sys.modules if m.startswith(("azure.monitor", "opentelemetry.sdk"))]
print("ok")
"""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)}
    completed = run_python(code, env)
    assert completed.returncode == 0 and completed.stdout.strip() == "ok", completed.stderr


class Ingestion(ThreadedServer[dict]):
    """A stand-in for Application Insights' ingestion endpoint (POST /v2.1/track, an array of envelopes)."""

    def __init__(self, directory: Path) -> None:
        self.tls = create_tls_files(directory)
        super().__init__(ssl_context=self.tls.server_context())

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
        envelopes = json.loads(raw)
        envelopes = envelopes if isinstance(envelopes, list) else [envelopes]
        with self._lock:
            for envelope in envelopes:
                self.deliveries.append(
                    {"path": request.path, "authorization": request.headers.get("Authorization"), **envelope}
                )
        accepted = {"itemsReceived": len(envelopes), "itemsAccepted": len(envelopes), "errors": []}
        return web.json_response(accepted)


@pytest.fixture
def ingestion(tmp_path) -> Iterator[Ingestion]:
    server = Ingestion(tmp_path / "ingestion-tls").start()
    yield server
    server.stop()


def test_with_a_connection_string_spans_and_metrics_go_to_application_insights_with_entra(
    emulator, ingestion, tmp_path
):
    """A fresh process with the app settings of a Function app whose Application Insights takes only
    Entra tokens: the Azure Monitor exporter sends exomi's spans and metrics with a token of the app's
    managed identity, and no log records (the Functions host sends those)."""
    code = """
import logging, os
from pathlib import Path
from shared import telemetry
from shared.settings import Settings

settings = Settings.load(local_settings=Path("none.json"))
assert telemetry.configure(settings.app_insights) is True
logging.getLogger("exomi.engine").warning("a log line: the Functions host exports it, not exomi")
with telemetry.span("exomi.pass", {telemetry.REQUEST_ID: "0190a9f0-0000-7000-8000-000000000001"}):
    telemetry.count_refusal("allowed_roles", "ticket", "provision")
telemetry.flush()
print("ok", flush=True)
os._exit(0)  # as the exomi command exits: nothing left to flush at shutdown
"""
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "HOME": str(tmp_path),
        "APPLICATIONINSIGHTS_CONNECTION_STRING": (
            f"InstrumentationKey={uuid.uuid4()};IngestionEndpoint={ingestion.origin}"
        ),
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": f"Authorization=AAD;ClientId={emulator.app_client_id}",
        "IDENTITY_ENDPOINT": emulator.identity_endpoint,
        "IDENTITY_HEADER": emulator.identity_header,
        "REQUESTS_CA_BUNDLE": str(ingestion.tls.ca_cert),  # the exporter's transport (requests)
        # The exporter's own reports to Microsoft (there is no internet here).
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
        "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
        "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
    }
    completed = run_python(code, env)
    assert completed.returncode == 0 and completed.stdout.strip() == "ok", completed.stderr

    envelopes = ingestion.deliveries
    assert envelopes and {e["path"] for e in envelopes} == {"/v2.1/track"}
    assert all((e["authorization"] or "").startswith("Bearer eyJ") for e in envelopes)
    kinds = {e["data"]["baseType"] for e in envelopes}
    assert "MessageData" not in kinds  # no log records from the Python side: no double export
    spans = [e["data"]["baseData"] for e in envelopes if e["data"]["baseType"] == "RemoteDependencyData"]
    spans = [s for s in spans if s["name"].startswith("exomi.")]
    assert [s["name"] for s in spans if s["name"].startswith("exomi.")] == ["exomi.pass"]
    assert spans[0]["properties"]["exomi.request_id"] == "0190a9f0-0000-7000-8000-000000000001"
    metrics = [
        m
        for e in envelopes
        if e["data"]["baseType"] == "MetricData"
        for m in e["data"]["baseData"]["metrics"]
        if m["name"] == "exomi.refusals"
    ]
    assert [m["value"] for m in metrics] == [1]
    # The token went in the Authorization header only; no envelope carries it or the identity header.
    bodies = json.dumps([{k: v for k, v in e.items() if k != "authorization"} for e in envelopes])
    assert "eyJ" not in bodies and emulator.identity_header not in bodies


def test_exomis_spans_continue_the_functions_hosts_trace_of_the_invocation(observed):
    """function_app.py hands each trigger's W3C traceparent over: the host's request row of the
    invocation and exomi's spans are then one operation in Application Insights."""
    trace_id, span_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    with telemetry.invoked(f"00-{trace_id}-{span_id}-01"), telemetry.span("exomi.work"):
        pass
    (span,) = observed.spans()
    assert f"{span.context.trace_id:032x}" == trace_id
    assert span.parent is not None and span.parent.is_remote
    assert f"{span.parent.span_id:016x}" == span_id


async def test_an_identity_holding_global_administrator_is_a_counted_finding(
    emulator, targets, app, observed
):
    with outside_exomi():
        uai = targets.user_assigned_identity()
        # Somebody gave the identity more than it needs, by hand.
        emulator.grant_exchange_access(uai.principal_id, app_role=None, directory_role="Global Administrator")
    before = observed.points()
    accepted = await dispatch(
        "create_request",
        api_call("create_request", {"target": uai.id, "organization": emulator.organization}),
    )
    assert accepted.status == 202, accepted.body
    final = await work_until_ended(app, accepted.body["id"])
    assert final["status"] == "succeeded" and "Global Administrator" in final["message"], final
    finding = {"exomi.finding_kind": "extra-privilege", "exomi.severity": "high", "exomi.source": "request"}
    assert delta(before, observed.points(), "exomi.findings", **finding) == 1


async def test_a_429_that_outlasts_the_sdks_retries_is_counted_by_service(emulator, targets, app, observed):
    with outside_exomi():
        uai = targets.user_assigned_identity()
    # Graph throttles the grant once more than kiota retries (Retry-After 1 s): the last 429 reaches
    # exomi's adapter, and the step waits and grants it on its next run.
    emulator.add_fault(
        path=r"/appRoleAssignments$", method="POST", status=429, retry_after=1, count=GRAPH_MAX_RETRIES + 1
    )
    before = observed.points()
    accepted = await dispatch(
        "create_request",
        api_call("create_request", {"target": uai.id, "organization": emulator.organization}),
    )
    assert accepted.status == 202, accepted.body
    final = await work_until_ended(app, accepted.body["id"])
    assert final["status"] == "succeeded", final
    assert delta(before, observed.points(), "exomi.throttled", **{"exomi.service": "Microsoft Graph"}) == 1
    runs = [s.attributes["exomi.outcome"] for s in observed.spans() if s.name == "exomi.step app-role"]
    assert runs == ["waiting", "done"]


def _dependency(envelope: dict[str, Any]) -> dict[str, Any] | None:
    """An exported span (RemoteDependencyData) as (name, trace id, span id, parent span id), or None."""
    if envelope["data"]["baseType"] != "RemoteDependencyData":
        return None
    data, tags = envelope["data"]["baseData"], envelope.get("tags", {})
    return {
        "name": data["name"],
        "trace_id": tags.get("ai.operation.id"),
        "span_id": data["id"],
        "parent_id": tags.get("ai.operation.parentId"),
    }


async def test_the_queue_worker_continues_the_trace_of_the_http_submit_from_another_process(
    emulator, targets, app, ingestion, observed, tmp_path
):
    """Two processes, as on a Function app scaled out: devhost serves the HTTP API (exporting to the
    local Application Insights ingestion endpoint; its queue trigger off), and this process is the queue
    worker (in-memory exporter). The work item carries the submit's W3C traceparent: the worker's spans
    are in the submit's trace, under the span that queued it, and link to the worker's own invocation."""
    with outside_exomi():
        uai = targets.user_assigned_identity()
    function_key = "fk-" + uuid.uuid4().hex
    env = {
        **app.runner.env(),
        "EXOMI_QUEUE_NAME": app.queue.queue_name,
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "DEVHOST_FUNCTION_KEY": function_key,
        # Only the HTTP API here: the queue worker is the other process.
        "AzureWebJobs.advance_request.Disabled": "true",
        "AzureWebJobs.fail_poisoned_request.Disabled": "true",
        "AzureWebJobs.resume_requests.Disabled": "true",
        "AzureWebJobs.reconcile.Disabled": "true",
        "APPLICATIONINSIGHTS_CONNECTION_STRING": f"InstrumentationKey={uuid.uuid4()};IngestionEndpoint={ingestion.origin}",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": f"Authorization=AAD;ClientId={emulator.app_client_id}",
        "REQUESTS_CA_BUNDLE": str(ingestion.tls.ca_cert),  # the exporter's transport (requests)
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
        "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
        "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
    }
    host = DevHostProcess(ROOT, env=env, log_file=tmp_path / "host.log")
    host.start()
    try:
        body = {
            "target": uai.id,
            "organization": emulator.organization,
            "channel": "ticket",
            "external_reference": TICKET,
        }
        async with httpx.AsyncClient(timeout=60, headers={"x-functions-key": function_key}) as client:
            # The host's first call opens exomi's app, which turns telemetry on (shared/service.py): the
            # spans of the calls after it are recorded.
            assert (await client.get(f"{host.url}/api/requests")).status_code == 200
            answer = await client.post(
                f"{host.url}/api/requests", json=body, headers={"x-functions-key": function_key}
            )
        assert answer.status_code == 202, answer.text
        request_id = answer.json()["id"]

        # The worker: what function_app.advance_request does with each message, under its own invocation.
        invocation = (uuid.uuid4().hex, uuid.uuid4().hex[:16])
        service = await runtime.exomi_service()
        deadline = time.monotonic() + 60
        while True:
            with outside_exomi():
                messages = list(app.queue.receive_messages(max_messages=4, visibility_timeout=30))
            for message in messages:
                with telemetry.invoked(f"00-{invocation[0]}-{invocation[1]}-01"):
                    await worker.process_work_item(message.content, message.dequeue_count)
                with outside_exomi():
                    app.queue.delete_message(message)
            with outside_exomi():
                record = await service.find(request_id)
            if record is not None and not record.status.active:
                break
            assert time.monotonic() < deadline, "the request did not end"
            await asyncio.sleep(0.05)
        assert record.status == "succeeded", record

        def submitted() -> list[dict[str, Any]] | None:
            spans = [d for e in ingestion.deliveries if (d := _dependency(e)) is not None]
            return spans if any(s["name"] == "exomi.submit" for s in spans) else None

        exported = polling.eventually(submitted, timeout=60, what="the HTTP host to export exomi.submit")
    finally:
        host.stop()

    (submit,) = [s for s in exported if s["name"] == "exomi.submit"]
    http_side = {s["span_id"]: s for s in exported if s["trace_id"] == submit["trace_id"]}
    works = sorted((s for s in observed.spans() if s.name == "exomi.work"), key=lambda s: s.start_time or 0)
    assert works
    # Every pass of the request is in the submit's trace: one operation in Application Insights.
    assert {f"{w.context.trace_id:032x}" for w in works} == {submit["trace_id"]}
    first = works[0]
    assert first.parent is not None and first.parent.is_remote
    queued_by = http_side[f"{first.parent.span_id:016x}"]  # a span of the other process
    chain = [queued_by]
    while chain[-1]["parent_id"] in http_side:
        chain.append(http_side[chain[-1]["parent_id"]])
    # Queued by the API call that recorded the request (exomi.submit is its child as well).
    assert chain[-1]["name"] == "exomi.api create_request", chain
    assert submit["parent_id"] == chain[-1]["span_id"]
    # The worker's invocation (the Functions host's trace of the queue trigger) is linked, not lost.
    assert [(f"{link.context.trace_id:032x}", f"{link.context.span_id:016x}") for link in first.links] == [
        invocation
    ]


def test_a_work_item_carries_only_a_well_formed_traceparent():
    """The trace context is read from a queue message: anything but a W3C traceparent is ignored (the item
    is still worked, in a trace of its own), never handed to the propagator."""
    request_id = "0190a9f0-0000-7000-8000-000000000001"
    valid = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"
    for given, kept in ((valid, valid), ("00-xyz", None), (valid.upper(), None), (42, None), (None, None)):
        item = work_queue.decode(json.dumps({"request_id": request_id, "traceparent": given}))
        assert (item.request_id, item.traceparent) == (request_id, kept), given
    assert work_queue.decode(base64.b64decode(work_queue.encode(request_id, valid))).traceparent == valid
    assert "traceparent" not in json.loads(base64.b64decode(work_queue.encode(request_id)))
