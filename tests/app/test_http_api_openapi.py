"""The OpenAPI document the app serves: valid OpenAPI 2.0 (what a Logic Apps or Power Platform custom
connector imports: learn.microsoft.com/connectors/custom-connectors/define-openapi-definition, "OpenAPI
3.0 is not supported"), the same routes, methods and keys as the functions the host indexed, and the
connector rules that can be checked offline.

The connector rules, and where they come from:
- learn.microsoft.com/connectors/custom-connectors/openapi-extensions: ``summary`` (sentence case) on
  operations; ``x-ms-summary`` (title case) on parameters and response schema properties; ``description``
  on operations, parameters and schemas; ``x-ms-visibility`` is important, advanced or internal, and an
  internal required parameter needs a default; ``x-ms-url-encoding`` single or double;
- .../connector-string-guidance: the connector title at most 30 characters; title and description
  without the word API or a Power Platform product; a summary at most 80 characters, without a slash,
  ending with a letter or digit;
- .../coding-standards: PascalCase operationIds without hyphens or underscores; a description ends with
  a period and is not the summary; success answers are 2xx, never ``default``;
- paconn validate / the certification checklist (github.com/microsoft/PowerPlatformConnectors): unique
  operationIds, a response schema on every operation, path parameters with x-ms-url-encoding, one
  security definition; ``connectionId`` is a parameter name the platform reserves for the connection.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import httpx
from openapi_spec_validator import validate

from shared.api.openapi import operation_id, swagger
from shared.api.routes import BY_OPERATION, ROUTES


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
        assert operations[(f"/{route.path}", route.method.lower())] == operation_id(route.operation_id)

    # One scheme: the function key as a header (a connector's API-key connection); health and the
    # document itself need none.
    assert document["securityDefinitions"] == {
        "function_key": {
            "type": "apiKey",
            "in": "header",
            "name": "x-functions-key",
            "description": "A function key of the app (App keys in the portal).",
        }
    }
    assert document["security"] == [{"function_key": []}]
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


VISIBILITY = {"important", "advanced", "internal"}
SMALL_WORDS = {"a", "an", "and", "as", "at", "by", "for", "in", "of", "on", "or", "the", "to"}
PRODUCTS = re.compile(r"Power Automate|Power Apps|Power Platform|Copilot Studio", re.IGNORECASE)


def _title_case(label: str) -> bool:
    words = label.split()
    return bool(words) and all(
        word[0].isupper() or word[0].isdigit() or (index and word in SMALL_WORDS)
        for index, word in enumerate(words)
    )


def _schema_problems(where: str, schema: dict[str, Any], definitions: dict[str, Any]) -> list[str]:
    problems = []
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/definitions/")
        return [] if name in definitions else [f"{where}: $ref to a missing definition {name}"]
    for prop, node in schema.get("properties", {}).items():
        here = f"{where}.{prop}"
        if "$ref" in node:
            problems += _schema_problems(here, node, definitions)
            continue
        if not node.get("description"):
            problems.append(f"{here}: no description")
        if not _title_case(node.get("x-ms-summary", "")):
            problems.append(f"{here}: x-ms-summary {node.get('x-ms-summary')!r} is not title case")
        if node.get("x-ms-visibility", "important") not in VISIBILITY:
            problems.append(f"{here}: x-ms-visibility {node['x-ms-visibility']!r}")
        for part in [node.get("items", {}), *node.get("allOf", [])]:
            problems += _schema_problems(f"{here}[]", part, definitions)
    return problems


def test_the_document_follows_the_power_platform_connector_rules():
    document = swagger(ROUTES, "https://exomi-func.azurewebsites.net/api/openapi.json")
    validate(document)
    assert document["swagger"] == "2.0"
    info = document["info"]
    assert len(info["title"]) <= 30
    for text in (info["title"], info["description"]):
        assert not re.search(r"\bAPI\b", text) and not PRODUCTS.search(text), text
    assert len(document["securityDefinitions"]) == 1
    definitions = document["definitions"]

    problems: list[str] = []
    ids: list[str] = []
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            where = f"{method.upper()} {path}"
            ids.append(operation["operationId"])
            if not re.fullmatch(r"[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]+)*", operation["operationId"]):
                problems.append(f"{where}: operationId {operation['operationId']!r} is not PascalCase")
            summary, description = operation.get("summary", ""), operation.get("description", "")
            if not (summary and len(summary) <= 80 and "/" not in summary and summary[-1].isalnum()):
                problems.append(f"{where}: summary {summary!r}")
            if not summary[:1].isupper() or _title_case(summary) and len(summary.split()) > 2:
                problems.append(f"{where}: summary {summary!r} is not sentence case")
            if not description.endswith(".") or description == summary:
                problems.append(f"{where}: description {description!r}")
            if operation.get("x-ms-visibility", "important") not in VISIBILITY:
                problems.append(f"{where}: x-ms-visibility {operation['x-ms-visibility']!r}")
            for parameter in operation["parameters"]:
                here = f"{where} parameter {parameter['name']}"
                if parameter["name"].lower() == "connectionid":
                    problems.append(f"{here}: a reserved name")
                if not parameter.get("description"):
                    problems.append(f"{here}: no description")
                if not _title_case(parameter.get("x-ms-summary", "")):
                    problems.append(f"{here}: x-ms-summary {parameter.get('x-ms-summary')!r}")
                visibility = parameter.get("x-ms-visibility", "important")
                if visibility not in VISIBILITY or (
                    visibility == "internal" and parameter["required"] and "default" not in parameter
                ):
                    problems.append(f"{here}: x-ms-visibility {visibility!r}")
                if parameter["in"] == "path" and parameter.get("x-ms-url-encoding") not in (
                    "single",
                    "double",
                ):
                    problems.append(f"{here}: a path parameter without x-ms-url-encoding")
                if parameter["in"] == "body":
                    problems += _schema_problems(here, parameter["schema"], definitions)
            responses = operation["responses"]
            if "default" in responses or not any(s.startswith("2") for s in responses):
                problems.append(f"{where}: no 2xx answer, or a default one")
            for status, response in responses.items():
                if not response.get("description") or "schema" not in response:
                    problems.append(f"{where} {status}: no description or schema")
                problems += _schema_problems(f"{where} {status}", response.get("schema", {}), definitions)
                for name, header in response.get("headers", {}).items():
                    if not header.get("description") or not _title_case(header.get("x-ms-summary", "")):
                        problems.append(f"{where} {status} header {name}: description or x-ms-summary")
    assert len(ids) == len(set(ids)), "operationIds are unique"
    for name, schema in definitions.items():
        if not schema.get("description"):
            problems.append(f"definition {name}: no description")
        problems += _schema_problems(f"definition {name}", schema, definitions)
    assert problems == []

    # The async pattern Logic Apps follows: 202 + Location + Retry-After, then poll GET Location until
    # it answers something other than 202 (200 succeeded, 422 failed).
    for path in ("/requests", "/revocations"):
        accepted = document["paths"][path]["post"]["responses"]["202"]
        assert {"Location", "Retry-After"} <= set(accepted["headers"])
        assert accepted["headers"]["Retry-After"]["type"] == "integer"
    poll = document["paths"]["/requests/{id}"]["get"]["responses"]
    assert {"200", "202", "422"} <= set(poll) and {"Location", "Retry-After"} <= set(poll["202"]["headers"])
    # The main actions come first; the operational ones are hidden from the action list.
    visibility = {
        op["operationId"]: op.get("x-ms-visibility") for m in document["paths"].values() for op in m.values()
    }
    assert (
        visibility["CreateRequest"]
        == visibility["GetRequest"]
        == visibility["CreateRevocation"]
        == "important"
    )
    assert visibility["GetHealth"] == visibility["GetOpenapi"] == "internal"
