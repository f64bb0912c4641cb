"""The OpenAPI 2.0 document of the API (Logic Apps custom connectors import OpenAPI 2.0), generated
from the route table and the pydantic models, so that it describes exactly what the app serves.

Request bodies are derived from the request models themselves (``ProvisionRequest`` and
``RevokeRequest`` without the fields the API sets: requested_by, and channel limited to the API's
channels). Pydantic writes JSON Schema 2020-12; ``_swagger`` turns it into the Swagger 2.0 dialect
(``Optional[X]`` becomes X with ``x-nullable``, ``const`` an enum, refs point at ``definitions``).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.api.documents import ApprovalBody
from shared.api.http import API_PREFIX, JSON
from shared.authorization import API_CHANNELS
from shared.models import Channel, ProvisionRequest, RevokeRequest

if TYPE_CHECKING:
    from shared.api.routes import Parameter, Route

API_VERSION = "1.0"
REF = "#/definitions/{model}"

HEADERS: dict[str, dict[str, str]] = {
    "Location": {"type": "string", "description": "The absolute URL of the request's status (GET)."},
    "Retry-After": {"type": "integer", "description": "Seconds to wait before polling Location again."},
    "Idempotent-Replayed": {
        "type": "string",
        "description": "'true' when an Idempotency-Key replay answered with the original request.",
    },
}

# What each body field means. Every field of the request models must be described here (a test
# checks it), so a new field cannot reach the document undocumented.
FIELD_DOCS: dict[str, str] = {
    "target": "ARM resource id of the Automation account, virtual machine, VM scale set, Function app or user-assigned identity.",
    "identity": "'system' (default) or the resource id of a user-assigned identity attached to the target; "
    "leave it out for a user-assigned identity target.",
    "organization": "The Exchange Online organization, e.g. contoso.onmicrosoft.com.",
    "role": "The Entra role to assign (default: the policy's default role).",
    "runtime": "PowerShell runtime of the runbook (Automation accounts): 5.1, 7.2 or 7.4.",
    "runtime_environment": "Runtime environment name for 7.x (default exomi-powershell-7-<minor>).",
    "module_versions": "Module name to exact version (default: the policy's pinned versions): "
    "PackageManagement, PowerShellGet, ExchangeOnlineManagement.",
    "runbook_name": "Name of the test runbook exomi publishes.",
    "hybrid_worker_group": "Automation accounts only: the Hybrid Runbook Worker group the runbooks run on "
    "(default: Azure's cloud sandbox). Needs the account's system-assigned identity; exomi grants it and hands "
    "back the lines to install on each worker (granted, not verified).",
    "verify": "Run the test runbook (or Run Command) to prove the connection works.",
    "channel": "How the request arrives: http (default), logicapps or ticket.",
    "external_reference": "Your reference, e.g. a ticket id: stored and echoed in every answer and callback.",
    "callback_url": "https URL on a host the policy allows: receives the final result (POST, retried). "
    "Never shown again.",
    "expires": "How long the access lasts: an ISO 8601 duration from when it is granted (P30D, PT8H) or a "
    "UTC date or time (2027-01-31 means the end of that day); policy may cap it or require it. Leave it "
    "out for access until revoked.",
}


def _body(schema: dict[str, Any], title: str, required: list[str] | None = None) -> dict[str, Any]:
    body = copy.deepcopy(schema)
    body["title"] = title
    properties = body["properties"]
    properties.pop("requested_by")
    properties["channel"] = {
        "type": "string",
        "enum": [channel.value for channel in API_CHANNELS],
        "default": Channel.HTTP.value,
    }
    body["required"] = required or [
        n for n in body.get("required", []) if n not in ("requested_by", "channel")
    ]
    for name, prop in properties.items():
        prop["description"] = FIELD_DOCS[name]
    return body


def definitions(routes: tuple[Route, ...]) -> dict[str, Any]:
    """Every schema the routes use, by name: the answer models and the request bodies."""
    bodies: list[type[BaseModel]] = [ProvisionRequest, RevokeRequest, ApprovalBody]
    models: list[type[BaseModel]] = list(bodies)
    for route in routes:
        models += [a.schema for a in route.answers.values() if a.schema and a.schema not in models]
    _, top = models_json_schema(
        [(model, "validation" if model in bodies else "serialization") for model in models],
        ref_template=REF,
    )
    found: dict[str, Any] = top["$defs"]
    provision, revoke = found.pop(ProvisionRequest.__name__), found.pop(RevokeRequest.__name__)
    found["CreateRequestBody"] = _body(provision, "CreateRequestBody")
    found["DiagnoseBody"] = _body(provision, "DiagnoseBody", required=["target"])
    found["RevocationBody"] = _body(revoke, "RevocationBody")
    enums = {name: schema for name, schema in found.items() if "enum" in schema}
    return {name: _swagger(schema, enums) for name, schema in sorted(found.items()) if name not in enums}


def _swagger(node: Any, enums: dict[str, Any]) -> Any:
    """JSON Schema 2020-12 (pydantic) to the Swagger 2.0 schema dialect. Enums are inlined (connectors
    show them as choices); a reference to a model drops its siblings, which Swagger 2.0 ignores."""
    if isinstance(node, list):
        return [_swagger(item, enums) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    options = node.pop("anyOf", None)
    if options is not None:
        others = [option for option in options if option != {"type": "null"}]
        if len(others) != 1:
            raise ValueError(f"Swagger 2.0 cannot express anyOf {options}")
        node = {**others[0], **node}
        if len(others) < len(options):
            node["x-nullable"] = True
    if "const" in node:
        node["enum"] = [node.pop("const")]
    for unsupported in ("propertyNames", "examples"):
        node.pop(unsupported, None)
    if "default" in node and node["default"] is None:
        del node["default"]  # Swagger 2.0 has no null: leaving the field out means the same
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        if name in enums:
            node = {**enums[name], **{k: v for k, v in node.items() if k != "$ref"}}
        elif node.get("x-nullable"):
            # A $ref's siblings are ignored: a nullable reference is an allOf of one, which can carry them.
            node = {"allOf": [{"$ref": node["$ref"]}], "x-nullable": True}
        else:
            node = {"$ref": node["$ref"]}
    return {key: _swagger(value, enums) for key, value in node.items()}


def _parameter(parameter: Parameter) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": parameter.name,
        "in": parameter.location,
        "description": parameter.description,
        "required": parameter.required,
    }
    item: dict[str, Any] = {"type": parameter.type}
    if parameter.enum:
        item["enum"] = list(parameter.enum)
    if parameter.many:
        data.update(type="array", items=item, collectionFormat="csv")
    else:
        data.update(item)
    for key, value in (
        ("minimum", parameter.minimum),
        ("maximum", parameter.maximum),
        ("maxLength", parameter.max_length),
        ("pattern", parameter.pattern),
    ):
        if value is not None:
            data[key] = value
    return data


def _operation(route: Route) -> dict[str, Any]:
    parameters = [_parameter(p) for p in route.parameters]
    if route.body:
        parameters.append(
            {"name": "body", "in": "body", "required": True, "schema": {"$ref": REF.format(model=route.body)}}
        )
    responses: dict[str, Any] = {}
    for status, answer in sorted(route.answers.items()):
        response: dict[str, Any] = {"description": answer.description}
        response["schema"] = (
            {"$ref": REF.format(model=answer.schema.__name__)} if answer.schema else {"type": "object"}
        )
        if answer.headers:
            response["headers"] = {name: HEADERS[name] for name in answer.headers}
        responses[str(status)] = response
    operation: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "description": route.description,
        "tags": list(route.tags),
        "parameters": parameters,
        "responses": responses,
    }
    if route.anonymous:
        operation["security"] = []
    return operation


def swagger(routes: tuple[Route, ...], url: str) -> dict[str, Any]:
    """The document for the app at ``url`` (the URL the document was asked for)."""
    parts = urlsplit(url)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(f"/{route.path}", {})[route.method.lower()] = _operation(route)
    return {
        "swagger": "2.0",
        "info": {
            "title": "exomi",
            "version": API_VERSION,
            "description": "Gives Azure managed identities Exchange Online PowerShell access. Requests run "
            "asynchronously: 202 + Location, then poll until 200 (done) or 422 (failed). See docs/API.md.",
        },
        "host": parts.netloc,
        "basePath": API_PREFIX,
        "schemes": [parts.scheme],
        "consumes": [JSON],
        "produces": [JSON],
        "securityDefinitions": {
            "function_key": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
            "function_key_query": {"type": "apiKey", "in": "query", "name": "code"},
        },
        "security": [{"function_key": []}, {"function_key_query": []}],
        "paths": paths,
        "definitions": definitions(routes),
    }
