"""OData query options as Microsoft Graph v1.0 applies them: ``$select``, ``$expand``, ``$top``,
``$skiptoken`` paging, ``$count``, ``$orderby``, ``$search`` and ``$filter`` (parsed in filters.py).

Each resource describes its shape once as an :class:`EntityType` (its properties, navigation
properties, and which ``$filter`` operators Graph accepts on which property); the handlers build the
full JSON of every visible object and hand it here to be filtered, paged, expanded and projected.

Directory objects (service principals, app role assignments, organization) follow the "advanced
query" rules: ``ne``/``not``/``endsWith``, ``$search``, ``$orderby`` and ``@odata.count`` need the
``ConsistencyLevel: eventual`` header (and, except ``$search``, ``$count=true``); without the header
``$count=true`` is silently ignored.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aiohttp import web

from emulator.graph.filters import compile_filter
from emulator.graph.router import GraphContext
from emulator.graph.schema import SELECT_EXPAND_FAILED, EntityType, unsupported
from emulator.http import GraphError

# OData system query options Graph knows; anything else starting with "$" is rejected.
KNOWN_OPTIONS = {
    "$select",
    "$expand",
    "$filter",
    "$top",
    "$skip",
    "$skiptoken",
    "$count",
    "$orderby",
    "$search",
    "$format",
}
MAX_PAGE_SIZE = 999


# --------------------------------------------------------------------------------------------------
# Parsing


@dataclass
class QueryOptions:
    select: list[str] | None = None
    expand: dict[str, list[str] | None] = field(default_factory=dict)  # navigation -> nested $select
    predicate: Callable[[dict], bool] | None = None
    top: int | None = None
    offset: int = 0
    count: bool = False
    orderby: tuple[str, bool] | None = None  # (property, descending)
    search: tuple[str, str] | None = None  # (property, term)
    page_size: int = 100


def _advanced(ctx: GraphContext, entity: EntityType) -> bool:
    """Whether the request carries the advanced query parameters (ConsistencyLevel + $count=true)."""
    return (
        entity.directory_object
        and ctx.request.headers.get("ConsistencyLevel", "").lower() == "eventual"
        and ctx.query.get("$count", "").lower() == "true"
    )


def _eventual(ctx: GraphContext) -> bool:
    return ctx.request.headers.get("ConsistencyLevel", "").lower() == "eventual"


def _reject_unknown_options(ctx: GraphContext) -> None:
    for name in ctx.query:
        if name.startswith("$") and name.lower() not in KNOWN_OPTIONS:
            raise GraphError(400, "BadRequest", f"The query parameter '{name}' is not supported.")


def _split_top_level(text: str) -> list[str]:
    """Splits ``a,b(c,d),e`` on the commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        current += char
    parts.append(current)
    return [p.strip() for p in parts]


def parse_select(entity: EntityType, raw: str | None) -> list[str] | None:
    if raw is None:
        return None
    selected = []
    for name in _split_top_level(raw):
        if not name:
            raise GraphError(
                400, "BadRequest", f"{SELECT_EXPAND_FAILED}An identifier was expected at position 0."
            )
        canonical = "*" if name == "*" else entity.resolve(name)
        if canonical is None:
            raise entity.unknown_property(name, SELECT_EXPAND_FAILED)
        selected.append(canonical)
    return None if "*" in selected else selected


def parse_expand(
    entity: EntityType, raw: str | None, related: dict[str, EntityType]
) -> dict[str, list[str] | None]:
    """``$expand=nav`` or ``nav($select=a,b)``; ``related`` maps each expandable navigation to its type."""
    if raw is None:
        return {}
    expanded: dict[str, list[str] | None] = {}
    for item in _split_top_level(raw):
        name, _, nested = item.partition("(")
        name = name.strip()
        canonical = entity.resolve(name) if name else None
        if canonical is None:
            raise entity.unknown_property(name, SELECT_EXPAND_FAILED)
        if canonical not in entity.navigations:
            raise GraphError(
                400,
                "BadRequest",
                f"{SELECT_EXPAND_FAILED}Property '{canonical}' on type 'microsoft.graph.{entity.name}' is not "
                "a navigation property or complex property. Only navigation properties can be expanded.",
            )
        if canonical not in related:
            raise unsupported(f"Expanding '{canonical}' is not supported.")
        nested_select = None
        if nested:
            option, _, value = nested.rstrip(")").partition("=")
            if option.strip().lower() != "$select":
                raise unsupported(f"Only $select is supported inside $expand; got '{option.strip()}'.")
            nested_select = parse_select(related[canonical], value)
        expanded[canonical] = nested_select
    return expanded


def parse_top(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        top = int(raw)
    except ValueError:
        raise GraphError(
            400,
            "BadRequest",
            f"Invalid value '{raw}' for $top query option found. The $top query option requires a "
            "non-negative integer value.",
        ) from None
    if not 1 <= top <= MAX_PAGE_SIZE:
        raise unsupported(f"Invalid page size specified: '{raw}'. Must be between 1 and 999 inclusive.")
    return top


def encode_skiptoken(offset: int) -> str:
    return base64.urlsafe_b64encode(f"emulator-page:{offset}".encode()).decode().rstrip("=")


def decode_skiptoken(token: str) -> int:
    expired = GraphError(
        400,
        "Directory_ExpiredPageToken",
        "The specified page token value has expired and can no longer be included in your request.",
    )
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise expired from None
    prefix, _, number = text.partition(":")
    if prefix != "emulator-page" or not number.isdigit():
        raise expired
    return int(number)


def parse_collection_query(
    ctx: GraphContext, entity: EntityType, related: dict[str, EntityType] | None = None
) -> QueryOptions:
    """Validates every query option of a collection GET, in the order the real service reports them."""
    _reject_unknown_options(ctx)
    query = ctx.query
    advanced = _advanced(ctx, entity)
    options = QueryOptions(
        select=parse_select(entity, query.get("$select")),
        expand=parse_expand(entity, query.get("$expand"), related or {}),
        top=parse_top(query.get("$top")),
        page_size=entity.default_page_size,
        count=query.get("$count", "").lower() == "true" and (_eventual(ctx) or not entity.directory_object),
    )
    if "$skip" in query and entity.directory_object:
        raise GraphError(400, "Request_BadRequest", "'$skip' is not supported by the service.")
    if "$skiptoken" in query:
        options.offset = decode_skiptoken(query["$skiptoken"])
    if "$filter" in query:
        options.predicate = compile_filter(query["$filter"], entity, advanced=advanced)
    if "$search" in query:
        options.search = _parse_search(ctx, entity, query["$search"])
    if "$orderby" in query:
        options.orderby = _parse_orderby(entity, query["$orderby"], advanced)
    return options


def parse_item_query(
    ctx: GraphContext, entity: EntityType, related: dict[str, EntityType] | None = None
) -> QueryOptions:
    _reject_unknown_options(ctx)
    return QueryOptions(
        select=parse_select(entity, ctx.query.get("$select")),
        expand=parse_expand(entity, ctx.query.get("$expand"), related or {}),
    )


def _parse_orderby(entity: EntityType, raw: str, advanced: bool) -> tuple[str, bool]:
    name, _, direction = raw.strip().partition(" ")
    canonical = entity.resolve(name)
    if canonical is None:
        raise GraphError(
            400,
            "BadRequest",
            f"Invalid $orderby expression: Could not find a property named '{name}' on type "
            f"'microsoft.graph.{entity.name}'.",
        )
    if direction.strip().lower() not in ("", "asc", "desc"):
        raise GraphError(400, "BadRequest", f"Syntax error at position {len(name) + 1} in '{raw}'.")
    if canonical not in entity.orderby or (entity.directory_object and not advanced):
        raise unsupported("Sorting not supported for current query.")
    return canonical, direction.strip().lower() == "desc"


def _parse_search(ctx: GraphContext, entity: EntityType, raw: str) -> tuple[str, str]:
    if not entity.search:
        raise unsupported("Search is not supported for this resource.")
    if not _eventual(ctx):
        raise unsupported(
            "Request with $search query parameter only works through MSGraph with a special request "
            "header: 'ConsistencyLevel: eventual'"
        )
    text = raw.strip()
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise GraphError(400, "Request_BadRequest", "Syntax error: search clause must be enclosed in quotes.")
    name, colon, term = text[1:-1].partition(":")
    canonical = entity.resolve(name) if colon else None
    if canonical not in entity.search:
        raise unsupported(f"Search on property '{name}' is not supported.")
    return canonical, term.lower()


def matches_search(item: dict, search: tuple[str, str]) -> bool:
    """$search matches the start of any word of the property (Graph tokenizes on spaces and casing)."""
    name, term = search
    words = str(item.get(name) or "").lower().replace("-", " ").replace("_", " ").split()
    return any(word.startswith(term) for word in words)


# --------------------------------------------------------------------------------------------------
# Responses


def project(item: dict, select: list[str] | None, keep: tuple[str, ...] = ()) -> dict:
    """The object with only the selected properties (and ``keep``, e.g. expanded navigations)."""
    if select is None:
        return item
    wanted = {*select, *keep}
    return {k: v for k, v in item.items() if k in wanted or k.startswith("@odata.")}


def expand(
    item: dict,
    expansions: dict[str, list[str] | None],
    expander: Callable[[dict, str], Any] | None,
) -> dict:
    if not expansions:
        return item
    result = dict(item)
    for navigation, nested_select in expansions.items():
        value = expander(item, navigation) if expander else None
        if isinstance(value, list):
            value = [project(v, nested_select) for v in value]
        elif isinstance(value, dict):
            value = project(value, nested_select)
        result[navigation] = value
    return result


def context_url(ctx: GraphContext, fragment: str, select: list[str] | None, entity: bool = False) -> str:
    if select:
        fragment += f"({','.join(select)})"
    return ctx.context_url(fragment + ("/$entity" if entity else ""))


def respond_collection(
    ctx: GraphContext,
    items: list[dict],
    options: QueryOptions,
    fragment: str,
    expander: Callable[[dict, str], Any] | None = None,
) -> web.Response:
    """One page of ``items`` (full JSON objects, already limited to what the caller may see)."""
    if options.predicate is not None:
        items = [i for i in items if options.predicate(i)]
    if options.search is not None:
        items = [i for i in items if matches_search(i, options.search)]
    if options.orderby is not None:
        name, descending = options.orderby
        items = sorted(items, key=lambda i: str(i.get(name) or "").lower(), reverse=descending)
    page_size = options.top or options.page_size
    page = items[options.offset : options.offset + page_size]
    body: dict[str, Any] = {"@odata.context": context_url(ctx, fragment, options.select)}
    if options.count:
        body["@odata.count"] = len(items)
    if options.offset + page_size < len(items):
        body["@odata.nextLink"] = _next_link(ctx, options.offset + page_size)
    keep = tuple(options.expand)
    body["value"] = [project(expand(i, options.expand, expander), options.select, keep) for i in page]
    return ctx.respond(body)


def respond_entity(
    ctx: GraphContext,
    item: dict,
    options: QueryOptions,
    fragment: str,
    expander: Callable[[dict, str], Any] | None = None,
    status: int = 200,
) -> web.Response:
    body = project(expand(item, options.expand, expander), options.select, tuple(options.expand))
    return ctx.respond(
        {"@odata.context": context_url(ctx, fragment, options.select, entity=True), **body}, status
    )


def _next_link(ctx: GraphContext, offset: int) -> str:
    """The same request (path and every other option) continued at ``offset``."""
    raw_path = ctx.request.raw_path.split("?", 1)[0]
    path = raw_path[len("/v1.0") :]
    params = [(k, v) for k, v in ctx.query.items() if k.lower() != "$skiptoken"]
    params.append(("$skiptoken", encode_skiptoken(offset)))
    query = "&".join(f"{quote(k, safe='$')}={quote(v, safe=',()$:/')}" for k, v in params)
    return ctx.next_link(f"{path}?{query}")
