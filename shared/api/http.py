"""HTTP plumbing of the API, independent of any web framework: the request and response values the
handlers work with, reading a JSON body (415, 413, 400), the one error shape, and the absolute URLs
the API hands back (Location, nextLink)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from shared.errors import (
    ExomiError,
    InputError,
    MalformedJson,
    PayloadTooLarge,
    UnsupportedMediaType,
)

MAX_BODY_BYTES = 64 * 1024
MAX_NESTING = 32  # a request body is a flat object with small maps; anything deeper is not one of ours
API_PREFIX = "/api"  # host.json extensions.http.routePrefix
JSON = "application/json"


def api_status(error: ExomiError) -> int:
    # A well-formed body whose fields do not validate is 422 Unprocessable Content; 400 is kept for
    # bodies that are not JSON at all.
    return 422 if isinstance(error, InputError) else error.http_status


@dataclass(frozen=True)
class ApiRequest:
    method: str
    url: str  # the full URL the caller used
    headers: Mapping[str, str]  # names in lower case
    query: Mapping[str, str] = field(default_factory=dict)
    route_params: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        value = self.headers.get(name.lower())
        return value if value else None

    def json_body(self) -> dict[str, Any]:
        """The body as a JSON object: 415 unless it is declared JSON, 413 over 64 KiB, 400 unless it
        parses, 422 (field ``body``) unless it is an object."""
        media_type = (self.header("content-type") or "").split(";", 1)[0].strip().lower()
        if media_type != JSON and not media_type.endswith("+json"):
            raise UnsupportedMediaType(
                f"the body must be JSON sent with Content-Type: {JSON}, not {media_type or 'no content type'}."
            )
        if len(self.body) > MAX_BODY_BYTES:
            raise PayloadTooLarge(
                f"the body is {len(self.body)} bytes; at most {MAX_BODY_BYTES} are accepted."
            )
        try:
            data = json.loads(self.body.decode("utf-8"), parse_constant=_no_constant)
        except UnicodeDecodeError:
            raise MalformedJson("the body is not UTF-8 text.") from None
        except ValueError as error:
            raise MalformedJson(f"the body is not valid JSON: {error}") from None
        except RecursionError:  # the parser gives up on very deep nesting; so do we
            raise MalformedJson(f"the body is nested more than {MAX_NESTING} levels deep.") from None
        if _depth(data) > MAX_NESTING:
            raise MalformedJson(f"the body is nested more than {MAX_NESTING} levels deep.")
        if not isinstance(data, dict):
            raise InputError("body", "must be a JSON object")
        return data

    def url_for(self, path: str, query: Mapping[str, str | None] | None = None) -> str:
        """The absolute URL of ``path`` (under /api) on the host the caller used. A function key the
        caller sent as ``?code=`` is carried over (as Durable Functions does), so that a client that
        only follows URLs, like Logic Apps' polling, can use them; a key sent as a header is not."""
        parts = urlsplit(self.url)
        params = {k: v for k, v in (query or {}).items() if v is not None}
        if self.query.get("code"):
            params["code"] = self.query["code"]
        url = f"{parts.scheme}://{parts.netloc}{API_PREFIX}/{path.lstrip('/')}"
        return f"{url}?{urlencode(params)}" if params else url


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in a parsed JSON value (iteratively: no recursion limit)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            pending.extend(
                (child, depth + 1) for child in (item.values() if isinstance(item, dict) else item)
            )
    return deepest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


@dataclass
class ApiResponse:
    status: int
    body: Any = None  # a JSON-able document; None: no body
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        return b"" if self.body is None else json.dumps(self.body, separators=(",", ":")).encode()


def error_document(error: ExomiError, **details: Any) -> dict[str, Any]:
    """The API's one error shape: {"error": {"code", "message", "field", ...details}}."""
    data = error.to_dict()
    return {
        "error": {
            "code": data.pop("code"),
            "message": data.pop("message"),
            "field": data.pop("field", None),
            **data,
            **details,
        }
    }


def error_response(error: ExomiError, **details: Any) -> ApiResponse:
    return ApiResponse(api_status(error), error_document(error, **details))
