"""The state tables: naming, creation, and the Table service client built from settings."""

from __future__ import annotations

import asyncio

from azure.core.credentials_async import AsyncTokenCredential
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


def open_table_service(
    storage: StorageSettings | None,
    credential: AsyncTokenCredential | None = None,
    *,
    proxy: str | None = None,
    no_proxy: tuple[str, ...] = (),
) -> TableServiceClient:
    """A Table service client from a connection string, or from the service URI and a token credential."""
    if storage is None:
        raise ConfigurationError(
            "AzureWebJobsStorage",
            "no storage is configured: set AzureWebJobsStorage to a connection string, or "
            "AzureWebJobsStorage__tableServiceUri (or __accountName) for identity-based access",
        )
    if storage.connection_string is not None:
        return TableServiceClient.from_connection_string(
            storage.connection_string.get_secret_value(), **sdk_http_options(proxy, no_proxy)
        )
    if storage.table_service_uri is None or credential is None:
        raise ConfigurationError(
            "AzureWebJobsStorage__tableServiceUri",
            "identity-based storage needs the table service URI and exomi's managed identity credential",
        )
    return TableServiceClient(
        storage.table_service_uri, credential=credential, **sdk_http_options(proxy, no_proxy)
    )


class Tables:
    """Clients for `<prefix>requests`, `<prefix>steps`, `<prefix>audit`, `<prefix>targets`, `<prefix>idempotency`,
    `<prefix>events`, `<prefix>refusals`, `<prefix>ledger`, `<prefix>durations`, `<prefix>principals`,
    `<prefix>active`."""

    def __init__(self, service: TableServiceClient, prefix: str) -> None:
        self.service = service
        self.prefix = prefix
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
