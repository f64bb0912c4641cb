"""The Graph adapter's contract, through the real msgraph-sdk against the emulator: a duplicate grant is
``AlreadyExists`` (what the grant steps read as "granted meanwhile"), any other refusal is not."""

from __future__ import annotations

import pytest

from shared import constants
from shared.azure.clients import AzureClients
from shared.azure.graph import GraphGateway
from shared.errors import AlreadyExists, UpstreamRejected

EXCHANGE_ADMINISTRATOR = "29232cdf-9323-42fd-ade2-1d097af3e4de"


@pytest.fixture
async def graph(emulator):
    clients = AzureClients(emulator.endpoints())
    yield GraphGateway(clients)
    await clients.close()


async def test_a_second_grant_of_the_same_app_role_is_already_exists(emulator, graph):
    principal = emulator.seed_principal("ContosoMI-duplicate", visible=True)
    exchange = emulator.exchange_service_principal_id
    grant, _ = await graph.grant_app_role(principal["id"], exchange, constants.EXCHANGE_MANAGE_AS_APP_ROLE_ID)
    with pytest.raises(AlreadyExists):
        await graph.grant_app_role(principal["id"], exchange, constants.EXCHANGE_MANAGE_AS_APP_ROLE_ID)
    assert [g.id for g in await graph.app_role_grants(principal["id"])] == [grant.id]


async def test_a_second_assignment_of_the_same_entra_role_is_already_exists(emulator, graph):
    principal = emulator.seed_principal("ContosoMI-duplicate-role", visible=True)
    await graph.assign_role(principal["id"], EXCHANGE_ADMINISTRATOR)
    with pytest.raises(AlreadyExists):
        await graph.assign_role(principal["id"], EXCHANGE_ADMINISTRATOR)
    assert len(await graph.role_grants(principal["id"])) == 1


async def test_another_bad_request_is_not_taken_for_a_duplicate(emulator, graph):
    principal = emulator.seed_principal("ContosoMI-bad-role", visible=True)
    unknown_app_role = "00000000-0000-0000-0000-000000000001"
    with pytest.raises(UpstreamRejected) as refused:
        await graph.grant_app_role(principal["id"], emulator.exchange_service_principal_id, unknown_app_role)
    assert not isinstance(refused.value, AlreadyExists)
    assert refused.value.status == 400 and refused.value.error_code == "Request_BadRequest"
