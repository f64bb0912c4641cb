"""HTTP trigger data in and out, as the host (RpcHttp) and the worker (the SDK's converters) shape it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web
from azure.functions import meta
from azure.functions.http import HttpRequestConverter
from multidict import CIMultiDict, MultiMapping


def _joined(values: MultiMapping[str], lower: bool) -> dict[str, str]:
    # ASP.NET's StringValues.ToString() joins repeated keys with ","; the host drops empty query values.
    joined: dict[str, str] = {}
    for key in dict.fromkeys(values.keys()):
        text = ",".join(values.getall(key))
        joined[key.lower() if lower else key] = text
    return joined


def build_request(
    method: str,
    url: str,
    headers: MultiMapping[str],
    query: MultiMapping[str],
    route_params: Mapping[str, str],
    body: bytes,
) -> Any:
    """The ``func.HttpRequest`` the worker builds. The Python worker asks for the raw body bytes
    (RawHttpBodyBytes), so the body is always bytes, whatever the content type."""
    value = {
        "method": meta.Datum(method, "string"),
        "url": meta.Datum(url, "string"),
        "headers": {k: meta.Datum(v, "string") for k, v in _joined(headers, lower=True).items()},
        "query": {k: meta.Datum(v, "string") for k, v in _joined(query, lower=False).items() if v},
        "params": {k: meta.Datum(v, "string") for k, v in route_params.items()},
        "body": meta.Datum(body, "bytes"),
    }
    return HttpRequestConverter.decode(meta.Datum(value, "http"), trigger_metadata={})


async def from_aiohttp(request: web.Request, route_params: Mapping[str, str]) -> Any:
    url = f"{request.scheme}://{request.host}{request.raw_path}"
    return build_request(
        request.method, url, request.headers, request.query, route_params, await request.read()
    )


def to_response(datum: meta.Datum) -> web.Response:
    """The HTTP answer for what the worker returned: an encoded ``func.HttpResponse`` or a str."""
    if datum.type == "string":
        return web.Response(
            status=200, body=datum.value.encode("utf-8"), content_type="text/plain", charset="utf-8"
        )
    value = datum.value
    headers: CIMultiDict[str] = CIMultiDict()
    for name, header in value["headers"].items():
        if name.lower() not in ("content-length", "transfer-encoding"):
            headers.add(name, header.value)
    for cookie in value.get("cookies") or []:
        for morsel in cookie.values():
            headers.add("Set-Cookie", morsel.OutputString())
    return web.Response(status=int(value["status_code"].value), headers=headers, body=value["body"].value)
