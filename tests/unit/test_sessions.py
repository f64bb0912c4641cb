"""The proxy read at start-up: which hosts bypass it (NO_PROXY's rules), and that azure-core clients
get a fixed proxy instead of reading the environment on every request."""

from __future__ import annotations

from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.transport import HttpRequest

from shared.azure.sessions import BypassingProxyPolicy, bypasses_proxy, sdk_http_options


def proxied(policy: BypassingProxyPolicy, url: str) -> str | None:
    request = PipelineRequest(HttpRequest("GET", url), _context())
    policy.on_request(request)
    return (request.context.options.get("proxies") or {}).get("https")


def _context():
    from azure.core.pipeline import PipelineContext

    return PipelineContext(None)


def test_no_proxy_names_hosts_and_their_subdomains():
    no_proxy = ("localhost", ".contoso.com", "127.0.0.1")
    assert bypasses_proxy("localhost", no_proxy)
    assert bypasses_proxy("storage.contoso.com", no_proxy)
    assert bypasses_proxy("contoso.com", no_proxy)
    assert not bypasses_proxy("notcontoso.com", no_proxy)
    assert not bypasses_proxy("management.azure.com", no_proxy)
    assert bypasses_proxy("anything", ("*",))


def test_azure_core_clients_use_the_start_up_proxy_except_for_no_proxy_hosts():
    assert sdk_http_options(None, ()) == {"use_env_settings": False}
    options = sdk_http_options("http://proxy:3128", ("127.0.0.1",))
    assert options["use_env_settings"] is False
    policy = options["proxy_policy"]
    assert proxied(policy, "https://management.azure.com/subscriptions") == "http://proxy:3128"
    assert proxied(policy, "https://127.0.0.1:10002/devstoreaccount1/Tables") is None
