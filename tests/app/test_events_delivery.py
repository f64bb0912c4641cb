"""Event Grid's untidiness and everything exomi must not act on, through the local Functions host:
duplicate, shuffled and doubled deliveries and a storm of tag writes each end in one request for the
final tags; events caused by exomi's own identity, other event and resource types, child resources and
malformed events are acknowledged (202) and make no request; invalid tags are logged and make none."""

from __future__ import annotations

import uuid

import pytest

from tests.app.tagging import (
    TagRunner,
    delivered,
    post_events,
    put_tags,
    requests,
    settled,
    subscribe,
    wait_for_requests,
    wait_until_ended,
)
from tests.engine.conftest import LOCATION, RG
from tests.engine.test_provision import exchange_grants, grants_of

WRITE = "Microsoft.Resources.ResourceWriteSuccess"
SECURITY_READER = "5d6b6bb7-de71-4623-b4af-96380a352509"
OID = "http://schemas.microsoft.com/identity/claims/objectidentifier"


@pytest.fixture
def exomi(emulator, azurite) -> TagRunner:
    # Tag requests wait 3 s before they start, long enough for a storm's events to reach them.
    return TagRunner(emulator, azurite, extra={"EXOMI_TAG_SETTLE_SECONDS": "3"})


def event(
    subject: str, *, event_type: str = WRITE, caller: str | None = None, evidence: str | None = None
) -> dict:
    """A Microsoft.Resources event as ARM's system topic sends it (azure-wire F.1), trimmed to what matters."""
    data = {
        "authorization": {"scope": subject, "action": "x/write", "evidence": {"principalId": evidence or ""}},
        "claims": {OID: caller} if caller else {},
        "correlationId": str(uuid.uuid4()),
        "resourceUri": subject,
        "operationName": "x/write",
        "status": "Succeeded",
    }
    return {
        "id": str(uuid.uuid4()),
        "topic": "/subscriptions/" + (subject.split("/") + [""] * 3)[2],
        "subject": subject,
        "eventType": event_type,
        "eventTime": "2026-10-01T12:00:00.1234567Z",
        "data": data,
        "dataVersion": "2",
        "metadataVersion": "1",
    }


def create_tagged_account(emulator, name: str, tags: dict[str, str]):
    body = {
        "location": LOCATION,
        "identity": {"type": "SystemAssigned"},
        "properties": {"sku": {"name": "Basic"}},
        "tags": tags,
    }
    return emulator.automation().automation_account.create_or_update(RG, name, body)


def test_duplicate_shuffled_and_doubled_deliveries_make_one_request(emulator, exomi, targets, function_host):
    subscribe(emulator, function_host)
    emulator.ctl(
        "PATCH",
        "/eventgrid/behaviour",
        {"duplicate_probability": 1, "duplicate_count": 2, "shuffle": True, "double_write_on_create": True},
    )
    # Created with the tags (ARM sends two write events for a create), then tagged again with the
    # same desired state in other spellings.
    account = create_tagged_account(emulator, "ContosoAzAuto2", {"exo-organization": emulator.organization})
    put_tags(emulator, account.id, {"EXO-ORGANIZATION": emulator.organization.upper(), "exo-runtime": "5.1"})
    (request,) = wait_for_requests(exomi, 1)
    assert wait_until_ended(exomi, request["id"])["status"] == "succeeded"

    deliveries = delivered(emulator, account.name)
    ids = [d["event_id"] for d in deliveries]
    assert any(ids.count(i) == 3 for i in ids), "every event was delivered three times"
    assert all(d["outcome"] == "delivered" for d in deliveries)
    assert [r["id"] for r in requests(exomi)] == [request["id"]]


async def test_a_storm_of_tag_writes_ends_in_one_request_for_the_final_tags(
    emulator, exomi, targets, function_host
):
    subscribe(emulator, function_host)
    account = targets.automation_account()
    roles = ["Global Reader", "Exchange Administrator", "Security Reader"]
    for i in range(20):  # the last write asks for Security Reader
        put_tags(
            emulator, account.id, {"exo-organization": emulator.organization, "exo-role": roles[(i + 1) % 3]}
        )
    settled(emulator)
    made = requests(exomi)
    ran = [r for r in made if r["status"] != "cancelled"]
    assert len(ran) == 1, made
    assert ran[0]["decision"]["role"] == "Security Reader"
    # Requests made for earlier tags were replaced before they started: no step ran for them.
    for superseded in (r for r in made if r["status"] == "cancelled"):
        code, status, _ = exomi.run("status", superseded["id"])
        assert code == 0 and status["steps"] == [] and "superseded" in status["message"]
    assert wait_until_ended(exomi, ran[0]["id"])["status"] == "succeeded"
    app_roles, entra_roles = await grants_of(emulator, account.identity.principal_id)
    assert [r.role_definition_id for r in entra_roles] == [SECURITY_READER]
    assert len(exchange_grants(app_roles, emulator.exchange_service_principal_id)) == 1
    assert all(d["outcome"] == "delivered" for d in settled(emulator))


def test_events_caused_by_exomi_itself_are_ignored(emulator, exomi, targets, function_host):
    subscribe(emulator, function_host)
    account = targets.automation_account()
    put_tags(emulator, account.id, {"exo-organization": emulator.organization})
    (request,) = wait_for_requests(exomi, 1)
    assert wait_until_ended(exomi, request["id"])["status"] == "succeeded"
    # exomi's identity changes the account's tags itself: exomi must not react to its own writes.
    as_exomi = emulator.automation(credential=emulator.app_credential())
    as_exomi.automation_account.update(
        RG, account.name, {"tags": {"exo-organization": emulator.organization, "exo-role": "Global Reader"}}
    )
    deliveries = delivered(emulator, account.name)
    own_writes = [
        d for d in deliveries if any(p in d["subjects"][0] for p in ("/modules/", "/runbooks/", "/jobs/"))
    ]
    assert len(own_writes) >= 5  # modules, runbook, draft, job...: all acknowledged
    assert all(d["outcome"] == "delivered" for d in deliveries)
    assert [r["id"] for r in requests(exomi)] == [request["id"]]


def test_events_exomi_cannot_use_are_acknowledged_and_make_no_request(
    emulator, exomi, targets, function_host
):
    account = targets.automation_account()
    put_tags(emulator, account.id, {"exo-organization": emulator.organization})  # no subscription yet
    subject = account.id.replace("/resourceGroups/", "/resourcegroups/")  # as Event Grid writes it
    sub = f"/subscriptions/{emulator.subscription_id}"
    unusable = [
        event(
            subject,
            event_type="Microsoft.Resources.ResourceActionSuccess",
            caller=emulator.admin_principal_id,
        ),
        event(
            subject, event_type="Microsoft.Resources.ResourceWriteFailure", caller=emulator.admin_principal_id
        ),
        event(f"{sub}/resourcegroups/{RG}/providers/Microsoft.Storage/storageAccounts/contosostore"),
        event(f"{subject}/runbooks/exomi-connect-exchange", caller=emulator.admin_principal_id),
        event(f"{sub}/resourcegroups/{RG}/providers/Microsoft.Resources/tags/default"),
        event("not a resource id"),
        {"id": str(uuid.uuid4())},
        {**event(subject), "data": "not an object"},
        {**event(subject), "eventType": None},
        # exomi's own write, known only by ARM's dash-less evidence.principalId
        event(subject, evidence=emulator.app_principal_id.replace("-", "")),
    ]
    response = post_events(function_host, unusable)
    assert response.status_code == 202, response.text
    assert requests(exomi) == []

    # The same account, in an event exomi can use (a CloudEvent this time), makes a request at once.
    usable = event(
        f"{subject}/providers/Microsoft.Resources/tags/default", caller=emulator.admin_principal_id
    )
    cloud_event = {
        "specversion": "1.0",
        "id": usable["id"],
        "source": usable["topic"],
        "subject": usable["subject"],
        "type": usable["eventType"],
        "time": usable["eventTime"],
        "data": usable["data"],
    }
    assert post_events(function_host, cloud_event).status_code == 202
    (request,) = requests(exomi)
    assert request["channel"] == "tag" and request["target"].lower() == account.id.lower()
    assert request["requested_by"] == emulator.admin_principal_id  # only an object id was in the claims


def test_invalid_tags_are_logged_and_make_no_request(emulator, exomi, targets, function_host, tmp_path):
    subscribe(emulator, function_host, schema="CloudEventSchemaV1_0")
    account = targets.automation_account()
    org = emulator.organization
    log = tmp_path / "host.log"
    invalid = [
        ({"exo-organization": org, "exo-role": "Chief Wizard"}, "tag exo-role:"),
        ({"exo-organization": org, "exo-runtime": "6.0"}, "tag exo-runtime:"),
        ({"exo-organization": "not a domain"}, "tag exo-organization:"),
        ({"exo-organization": org, "exo-identity": "no such/identity"}, "tag exo-identity:"),
        ({"exo-organization": org, "exo-role": "Global Administrator"}, "(rule allow_global_administrator)"),
    ]
    for tags, logged in invalid:
        since = len(emulator.event_deliveries())
        put_tags(emulator, account.id, tags)
        (delivery,) = delivered(emulator, "tags/default", since)  # each event reads the resource as it is now
        assert delivery["outcome"] == "delivered"
        assert logged in log.read_text()
    assert requests(exomi) == []
    assert f"the tags of {account.id} are invalid, nothing was requested: tag exo-role: " in log.read_text()

    put_tags(emulator, account.id, {"exo-organization": org, "exo-role": "Security Reader"})
    (request,) = wait_for_requests(exomi, 1)
    assert request["decision"]["role"] == "Security Reader"
