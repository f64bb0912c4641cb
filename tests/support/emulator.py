"""Test-side access to a running emulator: the control API and real SDK clients pointed at it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from azure.identity import ManagedIdentityCredential
from azure.identity.aio import ManagedIdentityCredential as AsyncManagedIdentityCredential
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.automation import AutomationClient
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.eventgrid import EventGridManagementClient
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.web import WebSiteManagementClient
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph_core import GraphClientFactory

from shared.azure.clients import AzureEndpoints

T = TypeVar("T")

MANAGE_AS_APP_ROLE_ID = "dc50a0fb-09a3-484d-be87-e023b12c6440"  # Exchange.ManageAsApp


@dataclass
class Emulator:
    """A fresh tenant on the session's emulator process (``info`` is the ready line after reset)."""

    info: dict[str, Any]
    control: httpx.Client
    _credentials: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.info[name]
        except KeyError:
            raise AttributeError(name) from None

    def endpoints(self, **overrides: Any) -> AzureEndpoints:
        """exomi's endpoints for this tenant (its own identity from the environment), for tests that
        build ``AzureClients`` directly; ``overrides`` set other fields (``proxy``, ``no_proxy``)."""
        return AzureEndpoints(
            arm_endpoint=self.arm_endpoint,
            arm_scope="https://management.azure.com/.default",
            graph_endpoint=self.graph_endpoint,
            graph_scope="https://graph.microsoft.com/.default",
            ca_bundle=self.ca_bundle,
            **overrides,
        )

    # ------------------------------------------------------------------ control API

    def ctl(
        self, method: str, path: str, json: Any = None, expect: int | tuple[int, ...] = (200, 201)
    ) -> Any:
        response = self.control.request(method, f"{self.control_endpoint}{path}", json=json)
        expected = (expect,) if isinstance(expect, int) else expect
        assert response.status_code in expected, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    def reset(self, **options: Any) -> dict[str, Any]:
        """A new tenant (``with_exchange_sp``, ``domain``, ...); the ids in ``info`` follow it."""
        self.info.update(self.ctl("POST", "/reset", options))
        return self.info

    def log(self, since: int = 0, service: str | None = None) -> list[dict[str, Any]]:
        query = f"?since={since}" + (f"&service={service}" if service else "")
        return self.ctl("GET", f"/log{query}")["entries"]

    def log_position(self) -> int:
        return self.ctl("GET", "/log?since=1000000000")["next"]

    def writes_since(self, position: int) -> list[dict[str, Any]]:
        return [
            e
            for e in self.log(position)
            if e["method"] in ("PUT", "PATCH", "POST", "DELETE") and e["service"] in ("arm", "graph")
        ]

    def add_fault(self, **spec: Any) -> dict[str, Any]:
        return self.ctl("POST", "/faults", spec)

    def expire_exchange_tokens(self) -> int:
        """Ends the Exchange tokens identities' hosts have cached: what waiting out ``token_cache``
        (up to 24 h in Azure) does after a connection that came before the grants."""
        return self.ctl("DELETE", "/exchange-tokens")["expired"]

    def exchange_tokens(self) -> list[dict[str, Any]]:
        return self.ctl("GET", "/exchange-tokens")["tokens"]

    def set_timings(self, **values: float) -> dict[str, Any]:
        return self.ctl("PATCH", "/timings", values)

    def set_rate_limits(
        self, *, clock: str = "manual", limits: dict[str, dict[str, Any]] | None = None, **config: Any
    ) -> dict[str, Any]:
        """Turns the token buckets on (all full). The manual clock is the default here: a bucket never
        refills between a test's calls, only when a caller waited out its Retry-After or the test
        advances it. ``limits`` overrides single limits, e.g. ``{"arm_writes": {"size": 3}}``."""
        body: dict[str, Any] = {"enabled": True, "clock": clock, "limits": limits or {}, **config}
        return self.ctl("PUT", "/ratelimits", body)

    def advance_rate_limits(self, seconds: float) -> dict[str, Any]:
        return self.ctl("POST", "/ratelimits/advance", {"seconds": seconds})

    def rate_limits(self) -> dict[str, Any]:
        return self.ctl("GET", "/ratelimits")

    def run_commands(self, vm_id: str | None = None) -> list[dict[str, Any]]:
        """The Run Commands sent to the tenant's VMs (to ``vm_id`` only, when given), oldest first."""
        commands = self.ctl("GET", "/run-commands")["runCommands"]
        return [c for c in commands if vm_id is None or c["vmId"].lower() == vm_id.lower()]

    def principals(self) -> list[dict[str, Any]]:
        return self.ctl("GET", "/principals")["principals"]

    def exchange_access(self, principal_id: str) -> tuple[int, list[str]]:
        """(Exchange.ManageAsApp grants, Entra role definition ids) the principal holds, straight from the
        tenant's state (a principal still replicating is seen too, unlike through Graph)."""
        principal = next((p for p in self.principals() if p["id"] == principal_id), None)
        if principal is None:
            return 0, []
        manage_as_app = sum(
            1
            for a in principal["appRoleAssignments"]
            if a["resourceId"] == self.exchange_service_principal_id
            and a["appRoleId"] == MANAGE_AS_APP_ROLE_ID
        )
        return manage_as_app, sorted(r["roleDefinitionId"] for r in principal["directoryRoles"])

    def seed_principal(
        self, display_name: str, *, type: str = "ManagedIdentity", visible: bool | None = None
    ) -> dict[str, Any]:
        """A service principal straight in the directory (a managed identity replicates unless visible)."""
        body: dict[str, Any] = {"displayName": display_name, "type": type}
        if visible is not None:
            body["visible"] = visible
        return self.ctl("POST", "/principals", body)

    def grant_exchange_access(
        self,
        principal_id: str,
        *,
        app_role: str | None = "Exchange.ManageAsApp",
        directory_role: str | None = "Exchange Administrator",
        backdate: bool = True,
    ) -> dict[str, Any]:
        """The app role and Entra role Connect-ExchangeOnline -ManagedIdentity needs, without Graph calls."""
        body: dict[str, Any] = {"principal_id": principal_id, "backdate": backdate}
        if app_role:
            body["app_role"] = app_role
        if directory_role:
            body["directory_role"] = directory_role
        return self.ctl("POST", "/grants", body)

    def subscribe_events(self, name: str, endpoint: str, **options: Any) -> dict[str, Any]:
        """An Event Grid subscription on the tenant's subscription topics (the handshake must succeed)."""
        return self.ctl("POST", "/eventgrid/subscriptions", {"name": name, "endpoint": endpoint, **options})

    def event_deliveries(self, subscription: str | None = None) -> list[dict[str, Any]]:
        query = f"?subscription={subscription}" if subscription else ""
        return self.ctl("GET", f"/eventgrid/deliveries{query}")["deliveries"]

    # ------------------------------------------------------------------ credentials and clients

    def admin_credential(self) -> ManagedIdentityCredential:
        return ManagedIdentityCredential(client_id=self.admin_client_id)

    def app_credential(self) -> ManagedIdentityCredential:
        return ManagedIdentityCredential()

    def async_admin_credential(self) -> AsyncManagedIdentityCredential:
        return AsyncManagedIdentityCredential(client_id=self.admin_client_id)

    def async_app_credential(self) -> AsyncManagedIdentityCredential:
        return AsyncManagedIdentityCredential()

    def _arm_kwargs(self) -> dict[str, Any]:
        # The tenant's cloud decides which token audience ARM accepts (emulator/clouds.py).
        return {
            "base_url": self.arm_endpoint,
            "credential_scopes": [self.arm_scope],
            "connection_verify": self.ca_bundle,
            "polling_interval": 0.1,
        }

    def arm_client(self, client_class: type[T], api_version: str, credential=None) -> T:
        """An azure-mgmt client of this tenant that sends ``api_version`` (an older published one)."""
        return client_class(
            credential or self.admin_credential(),
            self.subscription_id,
            api_version=api_version,
            **self._arm_kwargs(),
        )

    def authorization(
        self, credential=None, subscription_id: str | None = None
    ) -> AuthorizationManagementClient:
        """azure-mgmt-authorization's multi-API client (role assignments and role definitions at 2022-04-01)."""
        return AuthorizationManagementClient(
            credential or self.admin_credential(),
            subscription_id or self.subscription_id,
            **self._arm_kwargs(),
        )

    def automation(
        self, credential=None, subscription_id: str | None = None, api_version: str | None = None
    ) -> AutomationClient:
        """azure-mgmt-automation (2024-10-23 unless ``api_version`` names another published version)."""
        return AutomationClient(
            credential or self.admin_credential(),
            subscription_id or self.subscription_id,
            **self._arm_kwargs(),
            **({"api_version": api_version} if api_version else {}),
        )

    def msi(self, credential=None, subscription_id: str | None = None) -> ManagedServiceIdentityClient:
        return ManagedServiceIdentityClient(
            credential or self.admin_credential(),
            subscription_id or self.subscription_id,
            **self._arm_kwargs(),
        )

    def compute(self, credential=None, subscription_id: str | None = None) -> ComputeManagementClient:
        return ComputeManagementClient(
            credential or self.admin_credential(),
            subscription_id or self.subscription_id,
            **self._arm_kwargs(),
        )

    def web(self, credential=None, subscription_id: str | None = None) -> WebSiteManagementClient:
        return WebSiteManagementClient(
            credential or self.admin_credential(),
            subscription_id or self.subscription_id,
            **self._arm_kwargs(),
        )

    def eventgrid(self, credential=None, subscription_id: str | None = None) -> EventGridManagementClient:
        """azure-mgmt-eventgrid (api-version 2025-02-15): system topics and their event subscriptions."""
        return EventGridManagementClient(
            credential or self.admin_credential(),
            subscription_id or self.subscription_id,
            **self._arm_kwargs(),
        )

    def resources(self, credential=None, subscription_id: str | None = None) -> ResourceManagementClient:
        return ResourceManagementClient(
            credential or self.admin_credential(),
            subscription_id or self.subscription_id,
            **self._arm_kwargs(),
        )

    def graph(self, credential=None) -> GraphServiceClient:
        """msgraph-sdk client (async) trusting the emulator's CA. Create it inside the test's event loop.

        A sync credential is fine here (kiota awaits only awaitables) and leaves no session to close."""
        credential = credential or self.admin_credential()
        auth = AzureIdentityAuthenticationProvider(credential, scopes=[self.graph_scope])
        http_client = GraphClientFactory.create_with_default_middleware(
            client=httpx.AsyncClient(verify=self.ca_bundle)
        )
        adapter = GraphRequestAdapter(auth, client=http_client)
        adapter.base_url = self.graph_endpoint
        return GraphServiceClient(request_adapter=adapter)

    def graph_http(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        as_app: bool = False,
    ) -> httpx.Response:
        """A raw Graph call (``path`` after /v1.0) as the admin, or as exomi's identity with ``as_app``;
        for requests msgraph-sdk cannot send (malformed bodies, wrong audiences)."""
        token = self.token(
            self.graph_scope.removesuffix("/.default"), client_id=None if as_app else self.admin_client_id
        )
        with self.http() as http:
            return http.request(
                method,
                f"{self.graph_endpoint}{path}",
                json=json,
                params=params,
                headers={"Authorization": f"Bearer {token}", **(headers or {})},
            )

    def http(self) -> httpx.Client:
        """A raw HTTPS client trusting the emulator (for wire-level assertions)."""
        return httpx.Client(verify=self.ca_bundle, timeout=30)

    def token(self, resource: str | None = None, client_id: str | None = None) -> str:
        """A managed identity token for ``resource`` (default: the tenant's ARM)."""
        params = {
            "api-version": "2019-08-01",
            "resource": resource or self.arm_scope.removesuffix("/.default"),
        }
        if client_id:
            params["client_id"] = client_id
        response = httpx.get(
            self.identity_endpoint, params=params, headers={"X-IDENTITY-HEADER": self.identity_header}
        )
        response.raise_for_status()
        return response.json()["access_token"]
