"""Safe Table queries: parameterised filters over fixed property names, and opaque page tokens.

Filters are only ever built here, from property names written in code and values passed as
azure-data-tables parameters (`Status eq @status`), which the SDK quotes and escapes. No caller text
is ever concatenated into a filter.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol, cast

from azure.core.async_paging import AsyncItemPaged
from azure.data.tables import TableEntity
from azure.data.tables.aio import TableClient

from shared.errors import InputError

MAX_PAGE_SIZE = 200
_MAX_TOKEN_KEY = 1024


class Filter:
    """An AND of `Property eq @param` / `Property ge @param` clauses (and OR-groups of them), with their
    parameters."""

    def __init__(self) -> None:
        self._clauses: list[str] = []
        self.parameters: dict[str, Any] = {}

    def equals(self, prop: str, value: Any) -> Filter:
        return self.any_of(prop, [value])

    def at_least(self, prop: str, value: Any) -> Filter:
        name = f"p{len(self.parameters)}"
        self.parameters[name] = value
        self._clauses.append(f"{prop} ge @{name}")
        return self

    def any_of(self, prop: str, values: Sequence[Any]) -> Filter:
        names = []
        for value in values:
            name = f"p{len(self.parameters)}"
            self.parameters[name] = value
            names.append(f"{prop} eq @{name}")
        # The SDK substitutes only space-separated "@name" words, hence the spaces inside the brackets.
        self._clauses.append(names[0] if len(names) == 1 else "( " + " or ".join(names) + " )")
        return self

    @property
    def text(self) -> str | None:
        return " and ".join(self._clauses) or None


def encode_token(token: dict[str, str] | None) -> str | None:
    if not token:
        return None
    raw = json.dumps({"pk": token.get("PartitionKey"), "rk": token.get("RowKey")}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_token(text: str | None) -> dict[str, str] | None:
    """Decode a token made by encode_token; anything else is an InputError on continuation_token."""
    if text is None:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict) or set(data) != {"pk", "rk"}:
        raise InputError("continuation_token", "is not a token this API returned; start again without it")
    token = {}
    for name, key in (("PartitionKey", data["pk"]), ("RowKey", data["rk"])):
        if key is None:
            continue
        if (
            not isinstance(key, str)
            or len(key) > _MAX_TOKEN_KEY
            or not key.isprintable()
            or not key.isascii()
        ):
            raise InputError("continuation_token", "is not a token this API returned; start again without it")
        token[name] = key
    return token or None


def check_page_size(page_size: int) -> int:
    if not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InputError("page_size", f"must be a whole number from 1 to {MAX_PAGE_SIZE}")
    return page_size


async def fetch_page(
    table: TableClient, where: Filter, page_size: int, continuation_token: str | None
) -> tuple[list[TableEntity], str | None]:
    """Up to page_size entities matching `where`, and the token for the rest (None when there is no more).

    The service may return short (even empty) pages with a continuation; keep reading, asking each time
    only for what is still missing, so that the token we hand out points exactly after the last item.
    """
    check_page_size(page_size)
    token = decode_token(continuation_token)
    items: list[TableEntity] = []
    while True:
        remaining = page_size - len(items)
        if where.text is None:
            pager = table.list_entities(results_per_page=remaining)
        else:
            pager = table.query_entities(where.text, parameters=where.parameters, results_per_page=remaining)
        pages = _entity_pages(pager, token)
        async for page in pages:
            items.extend([entity async for entity in page])
            break
        token = pages.continuation_token
        if not token or len(items) >= page_size:
            return items, encode_token(token)


class _EntityPages(Protocol):
    """The page iterator of an entity query as it is at run time (TableEntityPropertiesPaged)."""

    continuation_token: dict[str, str] | None  # {"PartitionKey", "RowKey"} of the next entity

    def __aiter__(self) -> AsyncIterator[AsyncIterator[TableEntity]]: ...


def _entity_pages(pager: AsyncItemPaged[TableEntity], token: dict[str, str] | None) -> _EntityPages:
    # azure-core types every page token as str and by_page() as a plain iterator of pages; the Tables
    # entity pager takes and keeps a PartitionKey/RowKey dict, on the AsyncPageIterator it returns.
    by_page = cast(Callable[..., _EntityPages], pager.by_page)
    return by_page(continuation_token=token)


async def iter_all(table: TableClient, where: Filter) -> AsyncIterator[TableEntity]:
    """Every entity matching `where`, read page by page as the caller goes (for large sets)."""
    if where.text is None:
        raise ValueError("iter_all needs a filter")
    async for entity in table.query_entities(where.text, parameters=where.parameters):
        yield entity


async def fetch_all(table: TableClient, where: Filter) -> list[TableEntity]:
    """Every entity matching `where` (for small, bounded sets such as one request's steps)."""
    if where.text is None:
        raise ValueError("fetch_all needs a filter")
    return [entity async for entity in table.query_entities(where.text, parameters=where.parameters)]


def etag_of(metadata: Any) -> str | None:
    return metadata.get("etag") if isinstance(metadata, dict) else None
