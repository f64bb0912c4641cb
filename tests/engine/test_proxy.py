"""HTTPS_PROXY, read once at start-up: every ARM and Graph call goes through it as a CONNECT tunnel
(the real SDK clients against the emulator, through a small proxy here), except to NO_PROXY hosts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from shared.azure.arm import ArmGateway, ResourceRef
from shared.azure.clients import AzureClients
from shared.azure.graph import GraphGateway
from tests.engine.conftest import RG, Targets


class ConnectProxy:
    """An HTTP proxy that only tunnels (CONNECT, as clients use for https), and notes each tunnel's target."""

    def __init__(self) -> None:
        self.tunnels: list[str] = []
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
            if method != "CONNECT":
                writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            host, port = target.rsplit(":", 1)
            upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
            self.tunnels.append(target)
            writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            await writer.drain()
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            with contextlib.suppress(ConnectionError):
                writer.close()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    finally:
        with contextlib.suppress(ConnectionError, RuntimeError):
            sink.close()


@pytest.fixture
async def proxy() -> AsyncIterator[ConnectProxy]:
    running = ConnectProxy()
    await running.start()
    yield running
    await running.stop()


def clients_through(emulator, proxy: ConnectProxy, no_proxy: tuple[str, ...] = ()) -> AzureClients:
    return AzureClients(emulator.endpoints(proxy=proxy.url, no_proxy=no_proxy))


def host_port(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 443}"


async def test_arm_calls_go_through_the_proxy(emulator, proxy):
    identity = Targets(emulator).user_assigned_identity("ContosoMI-proxied")
    clients = clients_through(emulator, proxy)
    try:
        ref = ResourceRef(emulator.subscription_id, RG, identity.name)
        target = await ArmGateway(clients).get_user_assigned_identity(ref)
    finally:
        await clients.close()
    assert target is not None and target.id.lower() == identity.id.lower()
    assert proxy.tunnels == [host_port(emulator.arm_endpoint)]


async def test_graph_calls_go_through_the_proxy(emulator, proxy):
    seeded = emulator.seed_principal("ContosoMI-proxied-sp", visible=True)
    clients = clients_through(emulator, proxy)
    try:
        principal = await GraphGateway(clients).get_principal(seeded["id"])
    finally:
        await clients.close()
    assert principal is not None and principal.id == seeded["id"]
    assert proxy.tunnels == [host_port(emulator.graph_endpoint)]


async def test_no_proxy_hosts_are_reached_directly(emulator, proxy):
    identity = Targets(emulator).user_assigned_identity("ContosoMI-direct")
    clients = clients_through(emulator, proxy, no_proxy=(urlsplit(emulator.arm_endpoint).hostname or "",))
    try:
        ref = ResourceRef(emulator.subscription_id, RG, identity.name)
        assert await ArmGateway(clients).get_user_assigned_identity(ref) is not None
        seeded = emulator.seed_principal("ContosoMI-direct-sp", visible=True)
        assert await GraphGateway(clients).get_principal(seeded["id"]) is not None
    finally:
        await clients.close()
    assert proxy.tunnels == []
