"""HTTP sessions that do not consult the environment per request.

aiohttp (azure-core's async transport) with ``trust_env`` reads the proxy variables and ~/.netrc on every
request; httpx reads them when a client is made. exomi reads HTTPS_PROXY and NO_PROXY once, at start-up
(shared/settings.py), and gives every session that proxy explicitly (docs/OPERATIONS.md).
"""

from __future__ import annotations

from typing import Any

import httpx
from azure.core.pipeline.policies import ProxyPolicy


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
