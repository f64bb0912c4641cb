"""One credential and one SDK client per service for the whole process.

Endpoints come from settings, which is also how a sovereign cloud (or the local emulator) is chosen;
nothing here knows whether it talks to Azure or to the emulator.
"""

from __future__ import annotations

import importlib
import logging
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from azure.identity.aio import DefaultAzureCredential
from httpx_aiohttp import AiohttpTransport

from shared.azure.pacing import PacedTransport, Pacer, PacingPolicy
from shared.azure.sessions import AzureSession, sdk_http_options

log = logging.getLogger("exomi.azure")

if TYPE_CHECKING:  # each SDK is imported when its first client is made (a VM's compute SDK alone is 1 s)
    from azure.mgmt.authorization.aio import AuthorizationManagementClient
    from azure.mgmt.automation.aio import AutomationClient
    from azure.mgmt.compute.aio import ComputeManagementClient
    from azure.mgmt.msi.aio import ManagedServiceIdentityClient
    from azure.mgmt.web.aio import WebSiteManagementClient
    from msgraph import GraphServiceClient

# The SDKs of the targets most requests are for (Automation accounts, VMs and scale sets), which their
# first client imports. A long-running worker loads them in a thread once it has started
# (``preload_sdks``), so that a request's first call to one does not block the event loop for the import
# (compute alone is a quarter of a second of CPU); the rest (Web, Authorization: +25 MB) load on first use,
# and a short CLI command loads only what it uses. Together about 23 MB.
SDK_MODULES = ("azure.mgmt.compute.aio", "azure.mgmt.automation.aio")


def preload_sdks() -> None:
    """Imports SDK_MODULES (Python's import lock makes a concurrent first use wait for the same import)."""
    for name in SDK_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a module that fails to load fails again, visibly, where it is used
            log.warning("preloading %s failed; it is loaded on first use", name, exc_info=True)


# After a 429 the pacing gate lets one request through first (shared/azure/pacing.py), so one request can
# meet several 429s in a row where the service throttles for a while: kiota's default of 3 retries (each
# after Retry-After) gives up too soon; azure-core's ARM retry policy allows 10.
GRAPH_MAX_RETRIES = 6
# Short LROs (runbook draft/publish) finish in seconds; the services send Retry-After when they want more.
LRO_POLLING_INTERVAL_SECONDS = 2
# The x-ms-correlation-request-id of the latest ARM answer in this task (each step runs in its own task),
# so that the audit record of a change names the ARM call that made it.
ARM_CORRELATION: ContextVar[str | None] = ContextVar("arm_correlation", default=None)


def _remember_correlation(response: Any) -> None:
    headers = getattr(getattr(response, "http_response", None), "headers", None) or {}
    correlation = headers.get("x-ms-correlation-request-id")
    if correlation:
        ARM_CORRELATION.set(correlation)


@dataclass(frozen=True)
class AzureEndpoints:
    arm_endpoint: str  # e.g. https://management.azure.com
    arm_scope: str  # e.g. https://management.azure.com/.default
    graph_endpoint: str  # e.g. https://graph.microsoft.com/v1.0
    graph_scope: str  # e.g. https://graph.microsoft.com/.default
    ca_bundle: str | None = None  # extra CA to trust (only for a local emulator)
    managed_identity_client_id: str | None = None  # exomi's own user-assigned identity, if any
    proxy: str | None = None  # HTTPS_PROXY as read at start-up (settings.py)
    no_proxy: tuple[str, ...] = ()  # hosts reached without it


@dataclass
class AzureClients:
    endpoints: AzureEndpoints
    _credential: DefaultAzureCredential | None = None
    _arm_clients: dict[tuple[str, str], Any] = field(default_factory=dict)
    _graph: GraphServiceClient | None = None
    _graph_http: httpx.AsyncClient | None = None
    _graph_transports: list[httpx.AsyncBaseTransport] = field(default_factory=list)
    # One pacer for every ARM and Graph request of the process (shared/azure/pacing.py).
    pacer: Pacer = field(default_factory=Pacer)
    _session: AzureSession | None = None

    @property
    def session(self) -> AzureSession:
        """One connection pool and TLS context for every ARM and Graph call (shared/azure/sessions.py)."""
        if self._session is None:
            self._session = AzureSession(self.endpoints.ca_bundle)
        return self._session

    @property
    def credential(self) -> DefaultAzureCredential:
        if self._credential is None:
            kwargs: dict[str, Any] = {}
            if self.endpoints.managed_identity_client_id:
                kwargs["managed_identity_client_id"] = self.endpoints.managed_identity_client_id
            self._credential = DefaultAzureCredential(**kwargs)
        return self._credential

    def _arm_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "base_url": self.endpoints.arm_endpoint,
            "credential_scopes": [self.endpoints.arm_scope],
            "polling_interval": LRO_POLLING_INTERVAL_SECONDS,
            "raw_response_hook": _remember_correlation,
            "per_retry_policies": [PacingPolicy(self.pacer)],
            **sdk_http_options(self.endpoints.proxy, self.endpoints.no_proxy),
            "transport": self.session.transport(),  # the TLS context (EXOMI_CA_BUNDLE) is the session's
        }
        return kwargs

    def _arm(self, kind: str, factory, subscription_id: str):
        key = (kind, subscription_id.lower())
        if key not in self._arm_clients:
            self._arm_clients[key] = factory(self.credential, subscription_id, **self._arm_kwargs())
        return self._arm_clients[key]

    def automation(self, subscription_id: str) -> AutomationClient:
        from azure.mgmt.automation.aio import AutomationClient

        return self._arm("automation", AutomationClient, subscription_id)

    def compute(self, subscription_id: str) -> ComputeManagementClient:
        from azure.mgmt.compute.aio import ComputeManagementClient

        return self._arm("compute", ComputeManagementClient, subscription_id)

    def msi(self, subscription_id: str) -> ManagedServiceIdentityClient:
        from azure.mgmt.msi.aio import ManagedServiceIdentityClient

        return self._arm("msi", ManagedServiceIdentityClient, subscription_id)

    def web(self, subscription_id: str) -> WebSiteManagementClient:
        from azure.mgmt.web.aio import WebSiteManagementClient

        return self._arm("web", WebSiteManagementClient, subscription_id)

    def authorization(self, subscription_id: str) -> AuthorizationManagementClient:
        from azure.mgmt.authorization.aio import AuthorizationManagementClient

        return self._arm("authorization", AuthorizationManagementClient, subscription_id)

    def graph(self) -> GraphServiceClient:
        if self._graph is None:
            from kiota_authentication_azure.azure_identity_authentication_provider import (
                AzureIdentityAuthenticationProvider,
            )
            from kiota_http.middleware.options import RetryHandlerOption
            from msgraph import GraphRequestAdapter, GraphServiceClient
            from msgraph_core import GraphClientFactory

            auth = AzureIdentityAuthenticationProvider(self.credential, scopes=[self.endpoints.graph_scope])
            self._graph_http = self._graph_client()
            adapter = GraphRequestAdapter(
                auth,
                client=GraphClientFactory.create_with_default_middleware(
                    client=self._graph_http,
                    options={RetryHandlerOption.get_key(): RetryHandlerOption(max_retries=GRAPH_MAX_RETRIES)},
                ),
            )
            adapter.base_url = self.endpoints.graph_endpoint.rstrip("/")
            self._graph = GraphServiceClient(request_adapter=adapter)
        return self._graph

    def _graph_client(self) -> httpx.AsyncClient:
        """The Graph session: paced, not reading the environment (trust_env) for proxies, and on aiohttp.

        msgraph needs an httpx client; its default transport (httpcore) keeps 20 connections and scans its
        whole pool on every request, so a worker with more passes at once paid a TLS handshake for most
        Graph calls, or pool bookkeeping with a larger pool. aiohttp (as for ARM and Storage) keeps them
        all for a few CPU microseconds: bench/per_target_cpu.py measured about 25 % less CPU per identity.
        It shares the ARM clients' session (``session``)."""
        proxy = httpx.Proxy(self.endpoints.proxy) if self.endpoints.proxy else None

        def paced(through: httpx.Proxy | None) -> httpx.AsyncBaseTransport:
            transport = PacedTransport(AiohttpTransport(client=self.session.get, proxy=through), self.pacer)
            # msgraph wraps the transports in one that does not pass aclose on: close() closes them.
            self._graph_transports.append(transport)
            return transport

        mounts: dict[str, httpx.AsyncBaseTransport | None] = {}
        if proxy is not None:
            for host in (h.lstrip(".") for h in self.endpoints.no_proxy if h != "*"):
                mounts[f"all://{host}"] = mounts[f"all://*.{host}"] = paced(None)
            if "*" in self.endpoints.no_proxy:
                proxy = None
        return httpx.AsyncClient(
            transport=paced(proxy), mounts=mounts or None, trust_env=False, timeout=httpx.Timeout(60.0)
        )

    async def close(self) -> None:
        for client in self._arm_clients.values():
            await client.close()
        self._arm_clients.clear()
        if self._graph_http is not None:
            await self._graph_http.aclose()
            for transport in self._graph_transports:
                await transport.aclose()
            self._graph_transports.clear()
            self._graph_http = None
            self._graph = None
        if self._session is not None:
            await self._session.close()
        if self._credential is not None:
            await self._credential.close()
            self._credential = None
