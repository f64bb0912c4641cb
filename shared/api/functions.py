"""The azure.functions side of the API: an ``HttpRequest`` in, an ``HttpResponse`` out. function_app.py
registers one HTTP trigger per route and calls ``serve`` with the route's operation id."""

from __future__ import annotations

import azure.functions as func

from shared.api.http import JSON, ApiRequest
from shared.api.routes import dispatch


async def serve(operation_id: str, req: func.HttpRequest) -> func.HttpResponse:
    request = ApiRequest(
        method=req.method,
        url=req.url,
        headers={name.lower(): value for name, value in req.headers.items()},
        query=dict(req.params),
        route_params=dict(req.route_params),
        body=req.get_body() or b"",
    )
    response = await dispatch(operation_id, request)
    return func.HttpResponse(
        response.encoded(),
        status_code=response.status,
        headers=response.headers,
        mimetype=JSON,
        charset="utf-8",
    )
