"""HTTP sessions that do not consult the environment per request, and one session for ARM and Graph.

aiohttp (azure-core's async transport) with ``trust_env`` reads the proxy variables and ~/.netrc on every
request; httpx reads them when a client is made. exomi reads HTTPS_PROXY and NO_PROXY once, at start-up
(shared/settings.py), and gives every session that proxy explicitly (docs/OPERATIONS.md).

azure-core's aiohttp transport, given a CA file (``connection_verify``), builds a new TLS context for
every request, and aiohttp pools connections by TLS context: with EXOMI_CA_BUNDLE set every ARM call
loaded the file, opened a new connection and left the last one idle in the pool (a worker held ~500
sockets and ~100 MB more during a burst). ``AzureSession`` builds the context once and keeps one pool
for every ARM client and the Graph client.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

import aiohttp
import httpx
from azure.core.pipeline.policies import ProxyPolicy
from azure.core.pipeline.transport import AioHttpTransport


class BypassingProxyPolicy(ProxyPolicy):
    """ProxyPolicy with a fixed proxy read once at start-up, except for the NO_PROXY hosts."""

    def __init__(self, proxy: str, no_proxy: tuple[str, ...]) -> None:
        super().__init__(proxies={"http": proxy, "https": proxy})
        self.no_proxy = no_proxy

    def on_request(self, request: Any) -> None:
        host = (httpx.URL(request.http_request.url).host or "").lower()
        if not bypasses_proxy(host, self.no_proxy):
            super().on_request(request)


def bypasses_proxy(host: str, no_proxy: tuple[str, ...]) -> bool:
    """NO_PROXY's rule: a listed host, or a domain suffix (".example.com" or "example.com"), or "*"."""
    for entry in no_proxy:
        entry = entry.lstrip(".")
        if entry == "*" or host == entry or host.endswith("." + entry):
            return True
    return False


def sdk_http_options(proxy: str | None, no_proxy: tuple[str, ...]) -> dict[str, Any]:
    """Keyword arguments for every azure-core client (ARM, Tables, Queues): sessions that do not read
    proxy variables and ~/.netrc from the environment on every request (aiohttp's trust_env); the proxy
    configured at start-up, if any, is set once here instead."""
    options: dict[str, Any] = {"use_env_settings": False}
    if proxy:
        options["proxy_policy"] = BypassingProxyPolicy(proxy, no_proxy)
    return options


class AzureSession:
    """The process's one aiohttp session for ARM and Graph, made on first use (inside the event loop)."""

    def __init__(self, ca_bundle: str | None) -> None:
        self.ca_bundle = ca_bundle
        self._session: aiohttp.ClientSession | None = None

    def get(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            tls: ssl.SSLContext | bool = (
                ssl.create_default_context(cafile=self.ca_bundle) if self.ca_bundle else True
            )
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=tls),
                trust_env=False,  # the proxy comes from start-up settings, per request
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,  # as azure-core makes its own sessions
            )
        return self._session

    def transport(self) -> AioHttpTransport:
        """An azure-core transport on this session (for an ARM client)."""
        return SessionTransport(self.get)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class SessionTransport(AioHttpTransport):
    """azure-core's aiohttp transport on a session it does not own, taken when it first sends."""

    session: aiohttp.ClientSession | None

    def __init__(self, session: Callable[[], aiohttp.ClientSession]) -> None:
        super().__init__()
        self._session_owner = False  # the session outlives every client on it (AzureSession closes it)
        self._session_factory = session

    async def open(self) -> None:
        if self.session is None or self.session.closed:
            self.session = self._session_factory()
        await super().open()
