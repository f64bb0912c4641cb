"""The OpenAPI document the app serves: valid OpenAPI 2.0 (what a Logic Apps custom connector
imports), and the same routes, methods and keys as the functions the host indexed."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
from openapi_spec_validator import validate

from shared.api.routes import BY_OPERATION


def test_the_openapi_document_is_valid_and_matches_what_the_host_serves(start_api):
    api = start_api(worker=False)
    response = httpx.get(f"{api.url}/api/openapi.json")  # no key needed
    assert response.status_code == 200
    document = response.json()
    validate(document)  # raises on any violation of the OpenAPI 2.0 schema
    assert document["swagger"] == "2.0"
    assert document["host"] == urlsplit(api.url).netloc and document["basePath"] == "/api"

    # One operation per HTTP function the host indexed: same name, method, route and key level.
    functions = [f for f in api.host.info["functions"] if f["trigger"] == "httpTrigger"]
    assert sorted(f["name"] for f in functions) == sorted(BY_OPERATION)
    operations = {
        (path, method): operation["operationId"]
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }
    for function in functions:
        route = BY_OPERATION[function["name"]]
        assert function["methods"] == [route.method]
        assert function["url"] == f"{api.url}/api/{route.path}"
        assert function["authLevel"].lower() == ("anonymous" if route.anonymous else "function")
        assert operations[(f"/{route.path}", route.method.lower())] == route.operation_id

    # The function key, as a header or ?code=; health and the document itself need none.
    assert document["securityDefinitions"] == {
        "function_key": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
        "function_key_query": {"type": "apiKey", "in": "query", "name": "code"},
    }
    assert document["paths"]["/health"]["get"]["security"] == []
    assert "security" not in document["paths"]["/requests"]["post"]

    # Create: the Idempotency-Key header, the body, the 202 + Location + Retry-After pattern, errors.
    create = document["paths"]["/requests"]["post"]
    headers = {p["name"] for p in create["parameters"] if p["in"] == "header"}
    assert {"Idempotency-Key", "X-Exomi-On-Behalf-Of"} <= headers
    body = next(p for p in create["parameters"] if p["in"] == "body")
    assert body["schema"] == {"$ref": "#/definitions/CreateRequestBody"}
    assert set(create["responses"]["202"]["headers"]) >= {"Location", "Retry-After"}
    for status in ("400", "403", "409", "413", "415", "422"):
        assert create["responses"][status]["schema"] == {"$ref": "#/definitions/ErrorDocument"}
    poll = document["paths"]["/requests/{id}"]["get"]["responses"]
    assert {s: r["schema"]["$ref"] for s, r in poll.items() if s in ("200", "202", "422")} == {
        "200": "#/definitions/RequestDocument",
        "202": "#/definitions/RequestDocument",
        "422": "#/definitions/RequestDocument",
    }

    definitions = document["definitions"]
    error = definitions["ErrorDetail"]
    assert set(error["required"]) == {"code", "message", "field"}
    assert definitions["ErrorDocument"]["properties"]["error"] == {"$ref": "#/definitions/ErrorDetail"}
    create_body = definitions["CreateRequestBody"]
    assert "requested_by" not in create_body["properties"]
    assert create_body["properties"]["channel"]["enum"] == ["http", "logicapps", "ticket"]
    assert create_body["required"] == ["target", "organization"]
    assert definitions["DiagnoseBody"]["required"] == ["target"]
    assert set(definitions["RevocationBody"]["properties"]) == {
        "target",
        "identity",
        "channel",
        "external_reference",
    }
    for name in ("CreateRequestBody", "DiagnoseBody", "RevocationBody"):
        undocumented = [p for p, s in definitions[name]["properties"].items() if not s.get("description")]
        assert undocumented == [], name
