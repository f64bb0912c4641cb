"""Who may ask over HTTP: callers identified by App Service Authentication are bound to their targets by
the Azure roles they hold there, read by exomi from ARM's role assignments (inherited ones included).
A caller asking for, or revoking, a target it holds no role on is refused (403, a refusal record, no
change); an app team member with Contributor on its resource group succeeds end to end."""

from __future__ import annotations

import pytest

from tests.engine.conftest import RG
from tests.engine.test_provision import RECIPIENT_ADMIN
from tests.support.actors import actor


def rg_scope(emulator) -> str:
    return f"/subscriptions/{emulator.subscription_ids[0]}/resourceGroups/{RG}"


APP_TEAM = {
    "rules": [
        {
            "name": "app-team",
            "channels": ["http"],
            "principals": ["*@contoso.com"],
            "target_roles": ["Owner", "Contributor"],
        }
    ]
}
TRUSTED = {"EXOMI_TRUST_APP_SERVICE_AUTH": "true"}


@pytest.fixture
def api(emulator, start_api):
    return start_api(env=TRUSTED, policy=APP_TEAM)


def test_a_caller_with_contributor_on_the_resource_group_gets_its_target_provisioned(emulator, api, targets):
    account = targets.automation_account()
    developer = actor(emulator, "developer", "Contributor", rg_scope(emulator))  # inherited by the account
    accepted = api.post(
        "requests",
        {"target": account.id, "organization": emulator.organization},
        headers=developer.easy_auth(),
    )
    assert accepted.status_code == 202, accepted.text
    assert (accepted.json()["requested_by"], accepted.json()["authorized_by"]) == (developer.name, "app-team")
    final, _ = api.follow(accepted, client=api.client(developer.easy_auth()))
    assert final.status_code == 200 and final.json()["status"] == "succeeded"
    assert emulator.exchange_access(account.identity.principal_id) == (1, [RECIPIENT_ADMIN])
    # exomi read the caller's role assignments through ARM (Microsoft.Authorization), as its own identity.
    reads = [
        e
        for e in emulator.log(service="arm")
        if "/providers/Microsoft.Authorization/roleAssignments" in e["path"]
    ]
    assert reads and {e["status"] for e in reads} == {200}


def test_a_caller_without_a_role_on_the_target_can_neither_ask_for_it_nor_revoke_it(
    emulator, api, targets, exomi
):
    account = targets.automation_account()
    code, output, stderr = exomi.run(
        "provision", "--target", account.id, "--organization", emulator.organization
    )
    assert code == 0, stderr  # the platform team provisioned it with the exomi command
    reader = actor(emulator, "reader", "Reader", rg_scope(emulator))
    outsider = actor(emulator, "outsider")  # no role anywhere
    position = emulator.log_position()

    for who in (reader, outsider):
        for path, body in (
            (
                "requests",
                {"target": account.id, "organization": emulator.organization, "role": "Global Reader"},
            ),
            ("revocations", {"target": account.id}),
        ):
            response = api.post(path, body, headers=who.easy_auth())
            assert response.status_code == 403, response.text
            error = response.json()["error"]
            assert (error["code"], error["rule"]) == ("PolicyRefused", "rules")
            assert "holds none of them" in error["message"]

    assert emulator.writes_since(position) == []  # nothing changed in Azure: no grant, no removal
    assert emulator.exchange_access(account.identity.principal_id) == (1, [RECIPIENT_ADMIN])
    code, listed, _ = exomi.run("list")
    assert [r["channel"] for r in listed] == ["cli"]  # no request was made
    refused = api.refusals()
    assert [(r["principal_id"], r["operation"], r["rule"]) for r in refused] == [
        (reader.object_id, "provision", "rules"),
        (reader.object_id, "revoke", "rules"),
        (outsider.object_id, "provision", "rules"),
        (outsider.object_id, "revoke", "rules"),
    ]
    assert {r["target"] for r in refused} == {account.id}


def test_a_caller_cancels_only_a_request_it_could_have_made(emulator, start_api, targets):
    api = start_api(env=TRUSTED, policy=APP_TEAM, worker=False)  # requests stay queued
    account = targets.automation_account()
    developer = actor(emulator, "developer", "Contributor", rg_scope(emulator))
    reader = actor(emulator, "reader", "Reader", rg_scope(emulator))
    accepted = api.client(developer.easy_auth()).post(
        "/api/requests", json={"target": account.id, "organization": emulator.organization}
    )
    request_id = accepted.json()["id"]

    refused = api.client(reader.easy_auth()).post(f"/api/requests/{request_id}/cancel")
    assert refused.status_code == 403 and refused.json()["error"]["rule"] == "rules"
    assert api.client(reader.easy_auth()).get(f"/api/requests/{request_id}").json()["status"] == "queued"
    cancelled = api.client(developer.easy_auth()).post(f"/api/requests/{request_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert [(r["operation"], r["request_id"], r["principal_id"]) for r in api.refusals()] == [
        ("cancel", request_id, reader.object_id)
    ]
