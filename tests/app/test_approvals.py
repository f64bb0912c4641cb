"""Approvals and cancellation through the HTTP API under the local Functions host: a request for a
privileged role waits (nothing granted) until an approver the policy names, never the requester,
approves or denies it; a pending approval times out; a caller cancels a request that has not ended.
A Logic-Apps-style client follows one request through its approval."""

from __future__ import annotations

import threading

import pytest

from tests.engine.test_provision import EXCHANGE_ADMIN
from tests.support.actors import actor
from tests.support.polling import eventually


@pytest.fixture
def people(emulator):
    """A requester (its Logic App's identity), an approver and someone else, as App Service Authentication
    names them."""
    return {
        "requester": actor(emulator, "logic-exo"),
        "approver": actor(emulator, "secops"),
        "stranger": actor(emulator, "stranger", domain="fabrikam.com"),  # no rule names it
    }


def start(start_api, people, **policy):
    return start_api(
        env={"EXOMI_TRUST_APP_SERVICE_AUTH": "true"},
        policy={
            "rules": [
                {"name": "service-desk", "channels": ["http", "logicapps"], "principals": ["*@contoso.com"]}
            ],
            "approval": {
                "approvers": [people["approver"].object_id],
                "required_for_roles": ["Exchange Administrator"],
                "timeout": "PT1H",
            },
            **policy,
        },
    )


def ask_for_exchange_administrator(api, emulator, targets, people, name: str = "ContosoAzAuto1"):
    account = targets.automation_account(name)
    body = {
        "target": account.id,
        "organization": emulator.organization,
        "role": "Exchange Administrator",
        "channel": "logicapps",
        "external_reference": "INC-4711",
    }
    accepted = api.client(people["requester"].easy_auth()).post("/api/requests", json=body)
    assert accepted.status_code == 202, accepted.text
    document = accepted.json()
    assert document["status"] == "awaiting_approval"
    assert document["approval"]["reasons"] == ["role 'Exchange Administrator' requires approval"]
    return account, accepted


def decide(api, who, request_id: str, decision: str, comment: str | None = None):
    body = {"decision": decision, **({"comment": comment} if comment else {})}
    return api.client(who.easy_auth()).post(f"/api/requests/{request_id}/approval", json=body)


def test_a_logic_apps_client_follows_a_request_through_its_approval(emulator, start_api, targets, people):
    api = start(start_api, people)
    account, accepted = ask_for_exchange_administrator(api, emulator, targets, people)
    request_id = accepted.json()["id"]
    polled: dict = {}
    poller = threading.Thread(
        target=lambda: polled.update(
            zip(
                ("final", "seen"),
                api.follow(accepted, client=api.client(people["requester"].easy_auth())),
                strict=True,
            )
        )
    )
    poller.start()

    # Nothing is granted while it waits, and it keeps answering 202 with its status URL.
    waiting = api.client(people["requester"].easy_auth()).get(f"/api/requests/{request_id}")
    assert waiting.status_code == 202 and waiting.headers["Retry-After"]
    assert emulator.exchange_access(account.identity.principal_id) == (0, [])

    # Neither the requester nor a stranger may decide; both attempts are recorded.
    own = decide(api, people["requester"], request_id, "approve")
    assert own.status_code == 403 and own.json()["error"]["rule"] == "approval.approvers"
    assert "not an approver" in own.json()["error"]["message"]
    other = decide(api, people["stranger"], request_id, "approve")
    assert other.status_code == 403 and other.json()["error"]["rule"] == "rules"  # not even let in

    approved = decide(
        api, people["approver"], request_id, "Approve", "CAB-99"
    )  # as a Logic Apps approval says
    assert approved.status_code == 200 and approved.json()["status"] == "queued"
    assert approved.json()["approval"]["decided_by"] == people["approver"].name
    poller.join(timeout=120)
    final, seen = polled["final"], polled["seen"]
    assert final.status_code == 200 and final.json()["status"] == "succeeded"
    assert "awaiting_approval" in {response.json()["status"] for response in seen}
    assert final.json()["external_reference"] == "INC-4711"
    assert emulator.exchange_access(account.identity.principal_id) == (1, [EXCHANGE_ADMIN])

    audit = (
        api.client(people["requester"].easy_auth()).get(f"/api/requests/{request_id}?include=audit").json()
    )
    decision = next(a for a in audit["audit"] if a["step"] == "approval")
    assert decision["requested_by"] == people["approver"].name
    assert decision["after"]["approval"]["comment"] == "CAB-99"
    assert decide(api, people["approver"], request_id, "approve").status_code == 409  # decided already

    # An approver who asks for something cannot approve it: that takes a second person.
    other_account = targets.automation_account("ContosoAzAuto2")
    body = {
        "target": other_account.id,
        "organization": emulator.organization,
        "role": "Exchange Administrator",
    }
    own_request = api.client(people["approver"].easy_auth()).post("/api/requests", json=body).json()
    self_approval = decide(api, people["approver"], own_request["id"], "approve")
    assert self_approval.status_code == 403 and "cannot approve" in self_approval.json()["error"]["message"]
    assert [(r["operation"], r["rule"]) for r in api.refusals()] == [
        ("approve", "approval.approvers"),
        ("use the API", "rules"),
        ("approve", "approval.approvers"),
    ]


def test_a_denied_request_ends_denied_with_nothing_granted(emulator, start_api, targets, people):
    api = start(start_api, people)
    position = emulator.log_position()
    account, accepted = ask_for_exchange_administrator(api, emulator, targets, people)
    denied = decide(api, people["approver"], accepted.json()["id"], "deny", "not needed")
    assert denied.status_code == 200 and denied.json()["status"] == "denied"
    final, _ = api.follow(accepted, client=api.client(people["requester"].easy_auth()))
    assert final.status_code == 422
    assert (
        final.json()["error"]["code"] == "ApprovalDenied" and "not needed" in final.json()["error"]["message"]
    )
    assert emulator.exchange_access(account.identity.principal_id) == (0, [])
    # Nothing was written to the tenant but the account the test created: no grant, module or runbook.
    writes = emulator.writes_since(position)
    assert [
        e for e in writes if e["service"] == "graph" or "/automationAccounts/ContosoAzAuto1/" in e["path"]
    ] == []


def test_an_approval_that_nobody_gives_in_time_cancels_the_request(emulator, start_api, targets, people):
    api = start(
        start_api,
        people,
        approval={
            "approvers": [people["approver"].object_id],
            "required_for_roles": ["Exchange Administrator"],
            "timeout": "PT2S",
        },
    )
    account, accepted = ask_for_exchange_administrator(api, emulator, targets, people)
    # The worker looks at the request when its approval times out.
    final, _ = api.follow(accepted, client=api.client(people["requester"].easy_auth()))
    assert final.status_code == 422 and final.json()["status"] == "cancelled"
    assert final.json()["error"]["code"] == "ApprovalExpired"
    assert final.json()["approval"]["decision"] == "expired"
    assert emulator.exchange_access(account.identity.principal_id) == (0, [])
    late = decide(api, people["approver"], accepted.json()["id"], "approve")
    assert late.status_code == 409


def test_a_request_is_cancelled_by_its_requester_and_not_by_a_stranger(emulator, start_api, targets, people):
    api = start(start_api, people)
    _, accepted = ask_for_exchange_administrator(api, emulator, targets, people)
    request_id = accepted.json()["id"]
    stranger = api.client(people["stranger"].easy_auth()).post(f"/api/requests/{request_id}/cancel")
    assert stranger.status_code == 403 and stranger.json()["error"]["rule"] == "rules"
    cancelled = api.client(people["requester"].easy_auth()).post(f"/api/requests/{request_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["kept"] == []
    assert cancelled.json()["error"]["code"] == "Cancelled"
    again = api.client(people["requester"].easy_auth()).post(f"/api/requests/{request_id}/cancel")
    assert again.status_code == 409
    assert [(r["operation"], r["requested_by"]) for r in api.refusals()] == [
        ("use the API", people["stranger"].name)
    ]


def test_cancelling_a_waiting_request_rolls_back_what_it_granted(emulator, start_api, targets, people):
    emulator.set_timings(propagation_delay=3600)  # verification waits: the grants are made, the request waits
    api = start(start_api, people)
    account = targets.automation_account()
    client = api.client(people["requester"].easy_auth())
    accepted = client.post(
        "/api/requests", json={"target": account.id, "organization": emulator.organization}
    )
    request_id = accepted.json()["id"]

    def verifying():
        document = client.get(f"/api/requests/{request_id}").json()
        steps = {step["name"]: step["status"] for step in document["steps"]}
        return document["status"] == "waiting" and steps.get("verify") == "waiting" and document

    eventually(verifying, timeout=90, what="the request to wait for verification", interval=0.2)

    def cancel():
        response = client.post(f"/api/requests/{request_id}/cancel")
        # 409 while an engine pass works on it (it looks again every second here): try again, as documented.
        return None if response.status_code == 409 and "middle of a step" in response.text else response

    cancelled = eventually(cancel, timeout=30, what="the cancellation to be accepted", interval=0.3)
    assert cancelled.status_code == 200, cancelled.text
    # What it had granted, nobody else needs: rolled back (policy on_failure, default rollback).
    rolled_back = cancelled.json()["rolled_back"]
    assert any("Exchange.ManageAsApp" in change for change in rolled_back)
    assert any("entra-role" in change for change in rolled_back)
    assert any("runbook" in change for change in rolled_back)
    assert cancelled.json()["kept"] == []
    assert emulator.exchange_access(account.identity.principal_id) == (0, [])
