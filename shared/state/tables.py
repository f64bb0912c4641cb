"""The state tables: naming, creation, and the Table service client built from settings."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from typing import Any

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.pipeline import PipelineRequest
from azure.data.tables.aio import TableClient, TableServiceClient

from shared.azure.sessions import sdk_http_options
from shared.errors import ConfigurationError
from shared.settings import StorageSettings

TABLE_NAMES = (
    "requests",
    "steps",
    "audit",
    "targets",
    "idempotency",
    "events",
    "refusals",
    "ledger",
    "durations",
    "principals",
    "active",
)


class TableCalls:
    """How many HTTP calls this process made to each table, by operation: the bench's and an operator's
    view of what a provision costs in storage round trips (docs/STATE.md). It sees every try, retries
    included, as azure-core's ``raw_request_hook`` (a few string splits and one counter per call)."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()

    def __call__(self, request: PipelineRequest[Any]) -> None:
        http = request.http_request
        self.counts[_table_and_operation(http.method, http.url, http.headers, http)] += 1

    def snapshot(self, prefix: str = "") -> dict[str, dict[str, int]]:
        """The counts so far, by table (without ``prefix``) and operation."""
        tables: dict[str, dict[str, int]] = {}
        for (table, operation), count in sorted(self.counts.items()):
            name = table.removeprefix(prefix) if table != TABLES_ENDPOINT else table
            tables.setdefault(name, {})[operation] = count
        return tables

    def total(self) -> int:
        return sum(self.counts.values())


TABLES_ENDPOINT = "(tables)"  # the service's Tables resource: creating, listing, deleting tables


def _table_and_operation(method: str, url: str, headers: Any, http: Any) -> tuple[str, str]:
    """The table and the Table service operation of one HTTP call, from its method and URL
    (https://learn.microsoft.com/rest/api/storageservices/table-service-rest-api)."""
    resource = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    if resource == "$batch":  # Entity Group Transaction: the table is in the changeset's first part
        return _batch_table(http), "batch"
    name, _, keys = resource.partition("(")
    if name == "Tables":
        return TABLES_ENDPOINT, {"GET": "query", "POST": "create", "DELETE": "delete"}.get(method, method)
    if not keys or keys == ")":  # the table itself: query the entities, or insert one
        return name, "query" if method == "GET" else "insert" if method == "POST" else method.lower()
    if method in ("PUT", "MERGE", "PATCH"):  # with If-Match: Update/Merge Entity; without: Insert Or ...
        conditional = bool(headers.get("If-Match"))
        if method == "PUT":
            return name, "update" if conditional else "insert-or-replace"
        return name, "merge" if conditional else "insert-or-merge"
    return name, {"GET": "get", "DELETE": "delete"}.get(method, method.lower())


def _batch_table(http: Any) -> str:
    info = getattr(http, "multipart_mixed_info", None)
    for changeset in info[0] if info else ():
        inner = getattr(changeset, "multipart_mixed_info", None)
        for part in inner[0] if inner else ():
            return _table_and_operation(part.method, part.url, part.headers, part)[0]
    return "$batch"


def open_table_service(
    storage: StorageSettings | None,
    credential: AsyncTokenCredential | None = None,
    *,
    proxy: str | None = None,
    no_proxy: tuple[str, ...] = (),
    calls: TableCalls | None = None,
) -> TableServiceClient:
    """A Table service client from a connection string, or from the service URI and a token credential.
    ``calls`` counts its calls (every table client made from it shares the service's pipeline)."""
    options: dict[str, Any] = {**sdk_http_options(proxy, no_proxy)}
    if calls is not None:
        options["raw_request_hook"] = calls
    if storage is None:
        raise ConfigurationError(
            "AzureWebJobsStorage",
            "no storage is configured: set AzureWebJobsStorage to a connection string, or "
            "AzureWebJobsStorage__tableServiceUri (or __accountName) for identity-based access",
        )
    if storage.connection_string is not None:
        return TableServiceClient.from_connection_string(
            storage.connection_string.get_secret_value(), **options
        )
    if storage.table_service_uri is None or credential is None:
        raise ConfigurationError(
            "AzureWebJobsStorage__tableServiceUri",
            "identity-based storage needs the table service URI and exomi's managed identity credential",
        )
    return TableServiceClient(storage.table_service_uri, credential=credential, **options)


# Insert Entity answers with the entity by default (201), which the SDK parses with its generic
# deserializer: about half of an insert's client CPU for an audit record. ``return-no-content`` makes it
# 204 with the ETag, which is all exomi reads (bench/per_target_cpu.py). For inserts in a transaction too.
NO_CONTENT: dict[str, Any] = {"response_preference": "return-no-content"}


async def insert(table: TableClient, entity: dict[str, Any]) -> Mapping[str, Any]:
    """Insert Entity, answered without the entity (NO_CONTENT): its metadata (the ETag)."""
    return await table.create_entity(entity, **NO_CONTENT)


class Tables:
    """Clients for `<prefix>requests`, `<prefix>steps`, `<prefix>audit`, `<prefix>targets`, `<prefix>idempotency`,
    `<prefix>events`, `<prefix>refusals`, `<prefix>ledger`, `<prefix>durations`, `<prefix>principals`,
    `<prefix>active`."""

    def __init__(self, service: TableServiceClient, prefix: str, calls: TableCalls | None = None) -> None:
        self.service = service
        self.prefix = prefix
        self.calls = calls or TableCalls()  # counts only when the service was opened with it
        self.requests = self._client("requests")
        self.steps = self._client("steps")
        self.audit = self._client("audit")
        self.targets = self._client("targets")
        self.idempotency = self._client("idempotency")
        self.events = self._client("events")
        self.refusals = self._client("refusals")
        self.ledger = self._client("ledger")
        self.durations = self._client("durations")
        self.principals = self._client("principals")
        self.active = self._client("active")

    def _client(self, name: str) -> TableClient:
        return self.service.get_table_client(f"{self.prefix}{name}")

    async def ensure(self) -> None:
        """Create any missing table (safe to call on every start). One query tells which exist, so
        that a start of an existing deployment costs one round trip, not one per table."""
        # The prefix is validated (letters and digits, settings.py): safe inside the filter.
        query = f"TableName ge '{self.prefix}' and TableName lt '{self.prefix}{{'"  # noqa: S608
        existing = {table.name async for table in self.service.query_tables(query)}
        missing = [f"{self.prefix}{name}" for name in TABLE_NAMES if f"{self.prefix}{name}" not in existing]
        await asyncio.gather(*(self.service.create_table_if_not_exists(name) for name in missing))

    async def close(self) -> None:
        clients = (
            self.requests,
            self.steps,
            self.audit,
            self.targets,
            self.idempotency,
            self.events,
            self.refusals,
            self.ledger,
            self.durations,
            self.principals,
            self.active,
        )
        for client in clients:
            await client.close()
        await self.service.close()
