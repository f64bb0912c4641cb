"""The sampling policy exomi puts on its tracer provider (shared/telemetry.py, imported only once
telemetry is on): keep every span the wrapped sampler keeps, except kiota's internal ones.

kiota (msgraph-sdk's HTTP layer) opens about fifteen spans per Microsoft Graph call: the call itself
(``send_primitive_async - {+baseurl}/servicePrincipals/...``, with its URL and status) and one per middleware
and helper (``RetryHandler_send``, ``get_http_response_message``, ...). Only the first says anything an
operator needs; the others would be as many Application Insights rows per call.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes

# kiota's middleware and helper spans (kiota_http: httpx_request_adapter.py, middleware/*.py).
KIOTA_INTERNAL = re.compile(
    r"^(_?get_\w+|set_content_from_\w+|retry_cae_response_if_required|throw_failed_responses|\w+Handler_send)"
    r"( - .*)?$"
)


class WithoutKiotaInternals(Sampler):
    def __init__(self, delegate: Sampler) -> None:
        self.delegate = delegate

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if KIOTA_INTERNAL.match(name):
            return SamplingResult(Decision.DROP)
        return self.delegate.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"WithoutKiotaInternals{{{self.delegate.get_description()}}}"
