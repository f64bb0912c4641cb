"""The OpenAPI 2.0 document of the API (Logic Apps and Power Platform custom connectors import OpenAPI
2.0, not 3.x), generated from the route table and the pydantic models, so that it describes exactly what
the app serves.

It is connector-ready (learn.microsoft.com/connectors/custom-connectors/openapi-extensions and
connector-string-guidance): every operation has a sentence-case summary, a description and a PascalCase
operationId; every parameter and schema property has an ``x-ms-summary`` in title case (its label in
the designer) and a description; ``x-ms-visibility`` puts the main actions and fields first and hides the
operational ones; path parameters are ``x-ms-url-encoding: single``. The one security scheme is the
function key in the ``x-functions-key`` header: a connector's API-key connection sends it as a header,
and a header keeps the key out of URLs (exomi repeats a ``?code=`` key on the Location it hands back).

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
    "Location": {
        "type": "string",
        "description": "The absolute URL of the request's status (GET): poll it until it answers 200 or 422.",
        "x-ms-summary": "Status URL",
    },
    "Retry-After": {
        "type": "integer",
        "description": "Seconds to wait before polling Location again.",
        "x-ms-summary": "Retry After",
    },
    "Idempotent-Replayed": {
        "type": "string",
        "description": "'true' when an Idempotency-Key replay answered with the original request.",
        "x-ms-summary": "Idempotent Replay",
    },
}
SECURITY_SCHEME = "function_key"
# Words a title-case label spells differently from the property name.
ACRONYMS = {"id": "ID", "ids": "IDs", "url": "URL", "eg": "EG", "arm": "ARM"}
# What the request bodies are, shown on the connector's body parameter.
BODY_DOCS: dict[str, tuple[str, str]] = {
    "CreateRequestBody": ("Request", "The identity to give Exchange Online access, and how."),
    "DiagnoseBody": ("Target", "The target to diagnose; the other fields describe the desired state."),
    "RevocationBody": ("Revocation", "The target whose access exomi takes away."),
    "ApprovalBody": ("Decision", "The approver's decision."),
}
# How a connector shows the request fields: the required ones first, the tuning behind "advanced".
FIELD_VISIBILITY: dict[str, str] = {
    "target": "important",
    "organization": "important",
    "decision": "important",
    "identity": "advanced",
    "runtime": "advanced",
    "runtime_environment": "advanced",
    "module_versions": "advanced",
    "runbook_name": "advanced",
    "verify": "advanced",
    "channel": "advanced",
    "callback_url": "advanced",
}
# Descriptions of answer fields whose model leaves them out: by (definition, field), else by field name
# (one name means one thing across the documents). A test checks that every property is described.
PROPERTY_DOCS: dict[str, str] = {
    "id": "The request's id (a GUID).",
    "operation": "provision (grant access) or revoke (take it away).",
    "channel": "How the request arrived: tag, http, logicapps, ticket, cli, reconcile or expiry.",
    "target": "The target's ARM resource id.",
    "requested_by": "Who asked, as exomi identified them.",
    "external_reference": "The caller's reference (e.g. a ticket id), echoed back.",
    "approval": "Set when policy required an approver.",
    "error": "Why it failed (the same shape as the error answers).",
    "created_at": "When the request was recorded (UTC).",
    "updated_at": "When the request last changed (UTC).",
    "steps": "The request's steps, in order.",
    "result": "For a succeeded provision request: what is in place.",
    "decided_by": "The approver who decided.",
    "decided_at": "When the decision was made (UTC).",
    "comment": "The approver's comment.",
    "step": "The step that made the change (request: the acceptance of the request).",
    "sequence": "The change's position within its step.",
    "action": "What exomi did.",
    "before": "The state before the change (null: nothing).",
    "after": "The state after the change.",
    "at": "When it happened (UTC).",
    "severity": "high, medium or low.",
    "detail": "What exomi saw, for people.",
    "note": "What to do with these lines.",
    "organization": "The Exchange Online organization, e.g. contoso.onmicrosoft.com.",
    "runbook_name": "The test runbook exomi published (Automation accounts).",
    "role": "The Entra role.",
    "runtime": "The PowerShell runtime of the runbook: 5.1, 7.2 or 7.4.",
    "runtime_environment": "The Automation runtime environment for PowerShell 7.x.",
    "module_versions": "Module name to the exact version installed.",
    "reason": "Why it was refused.",
    "field": "The request field at fault, if one is.",
    "refused": "The policy refusal, if any.",
    "decision": "The effective values policy gives the request.",
    "title": "The prerequisite, for people.",
    "principal_id": "The identity's object id.",
    "display_name": "The principal's display name.",
    "principal_type": "ManagedIdentity, Application, ...",
    "resource_id": "A managed identity's Azure resource id.",
    "exchange_app_roles": "Its app roles on Office 365 Exchange Online (Exchange.ManageAsApp or look-alikes).",
    "entra_roles": "Its supported Entra roles.",
    "over_privileged": "true: it holds more than its targets need.",
    "targets": "The targets exomi provisioned with this identity.",
    "checks": "Each check and its outcome.",
    "ok": "true: the check passed.",
    "HealthCheck.name": "settings or storage.",
    "HealthDocument.status": "healthy or unhealthy.",
    "Holder.status": "managed (by exomi), unmanaged, or orphaned (its resource is gone).",
    "PlanStepDocument.name": "The step, e.g. resolve-identity, grant-app-role, verify.",
    "StepDocument.status": "pending, done, waiting, failed or skipped.",
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


def title(name: str) -> str:
    """A field or parameter name as a connector label: page_size -> Page Size, nextLink -> Next Link,
    Idempotency-Key -> Idempotency Key, principal_id -> Principal ID."""
    spaced = "".join(
        f" {c}" if c.isupper() and i and name[i - 1].islower() else c for i, c in enumerate(name)
    )
    words = spaced.replace("_", " ").replace("-", " ").split()
    return " ".join(ACRONYMS.get(word.lower(), word[:1].upper() + word[1:]) for word in words)


def _annotate(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Label and describe every property of a definition, for the connector's designer. A plain
    reference stays bare (Swagger 2.0 ignores a $ref's siblings): its definition describes it."""
    properties = schema.get("properties", {})
    for prop, node in properties.items():
        text = node.get("description") or PROPERTY_DOCS.get(f"{name}.{prop}") or PROPERTY_DOCS.get(prop)
        if "$ref" in node:
            continue
        if text is None:
            raise ValueError(f"the OpenAPI document has no description of {name}.{prop}")
        node["description"] = text
        node["x-ms-summary"] = title(prop)
        if name in BODY_DOCS and prop in FIELD_VISIBILITY:
            node["x-ms-visibility"] = FIELD_VISIBILITY[prop]
    return schema


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
    return {
        name: _annotate(name, _swagger(schema, enums))
        for name, schema in sorted(found.items())
        if name not in enums
    }


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
            kept = {k: node[k] for k in ("description",) if k in node}
            node = {"allOf": [{"$ref": node["$ref"]}], "x-nullable": True, **kept}
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
    data["x-ms-summary"] = parameter.summary or title(parameter.name)
    if parameter.visibility:
        data["x-ms-visibility"] = parameter.visibility
    if parameter.location == "path":
        data["x-ms-url-encoding"] = "single"  # the id is one path segment
    return data


def operation_id(name: str) -> str:
    """The connector's operationId (PascalCase, connector coding standards) of a route, whose own id is
    the snake_case name of its function in function_app.py: create_request -> CreateRequest."""
    return "".join(word.capitalize() for word in name.split("_"))


def _operation(route: Route) -> dict[str, Any]:
    parameters = [_parameter(p) for p in route.parameters]
    if route.body:
        label, text = BODY_DOCS[route.body]
        parameters.append(
            {
                "name": "body",
                "in": "body",
                "required": True,
                "description": text,
                "x-ms-summary": label,
                "schema": {"$ref": REF.format(model=route.body)},
            }
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
        "operationId": operation_id(route.operation_id),
        "summary": route.summary,
        "description": route.description,
        "tags": list(route.tags),
        "parameters": parameters,
        "responses": responses,
    }
    if route.visibility:
        operation["x-ms-visibility"] = route.visibility
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
            # No "API" in the title or description, and no Power Platform product (connector string guidance).
            "description": "Gives Azure managed identities Exchange Online PowerShell access. Requests run "
            "asynchronously: an accepted request answers 202 with Location and Retry-After; GET Location "
            "(after Retry-After seconds) answers 202 while it runs, 200 when it succeeded and 422 when it "
            "failed. Connector actions and the HTTP action follow this polling pattern by themselves.",
        },
        "host": parts.netloc,
        "basePath": API_PREFIX,
        "schemes": [parts.scheme],
        "consumes": [JSON],
        "produces": [JSON],
        "securityDefinitions": {
            SECURITY_SCHEME: {
                "type": "apiKey",
                "in": "header",
                "name": "x-functions-key",
                "description": "A function key of the app (App keys in the portal).",
            }
        },
        "security": [{SECURITY_SCHEME: []}],
        "paths": paths,
        "definitions": definitions(routes),
    }
