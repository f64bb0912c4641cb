"""Access that expires: a request asks for a duration (HTTP field, or the exo-expires tag) within the
policy's maximum for its role; at the end exomi revokes exactly as a revoke request does (channel
expiry, audited); a new request before then renews; expired access is not granted again by tags that
still say the same."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.app.tagging import TagRunner, merge_tags, put_tags, subscribe, wait_for_requests, wait_until_ended
from tests.engine.test_provision import RECIPIENT_ADMIN
from tests.support.exomi import policy_for
from tests.support.polling import eventually

LIMITED = {"expiry": {"max_duration": {"Exchange Recipient Administrator": "PT1H"}}}


def expiry_revocation(exomi, target: str) -> dict:
    """The revoke request exomi makes when the target's access ends, once it has ended."""

    def found():
        code, listed, _ = exomi.run("list", "--channel", "expiry")
        return code == 0 and [r for r in listed if r["target"].lower() == target.lower()]

    (revoke,) = eventually(found, timeout=60, what="the expiry's revoke request", interval=0.3)
    return wait_until_ended(exomi, revoke["id"])


def test_access_ends_at_its_expiry_and_is_revoked_like_a_revoke_request(emulator, start_api, targets):
    api = start_api(policy=LIMITED)
    account = targets.automation_account()
    body = {"target": account.id, "organization": emulator.organization}

    # Policy bounds the duration, and here a limit makes one necessary.
    too_long = api.post("requests", {**body, "expires": "PT2H"})
    assert too_long.status_code == 403 and too_long.json()["error"]["rule"] == "expiry.max_duration"
    missing = api.post("requests", body)
    assert missing.status_code == 403 and missing.json()["error"]["field"] == "expires"

    accepted = api.post("requests", {**body, "expires": "PT4S"})
    final, _ = api.follow(accepted)
    assert final.status_code == 200 and final.json()["status"] == "succeeded"
    expires_at = datetime.fromisoformat(final.json()["expires_at"])
    assert final.json()["result"]["expires_at"] == final.json()["expires_at"]
    # Four seconds from when the access was in place (the request ended a moment after).
    assert (
        timedelta(0) < expires_at - datetime.fromisoformat(final.json()["updated_at"]) <= timedelta(seconds=4)
    )
    assert emulator.exchange_access(account.identity.principal_id) == (1, [RECIPIENT_ADMIN])

    revoked = expiry_revocation(api.exomi, account.id)
    assert (revoked["status"], revoked["requested_by"], revoked["operation"]) == (
        "revoked",
        "exomi-expiry",
        "revoke",
    )
    assert datetime.fromisoformat(revoked["created_at"]) >= expires_at
    assert emulator.exchange_access(account.identity.principal_id) == (0, [])
    code, status, _ = api.exomi.run("status", revoked["id"])
    changes = [a["action"] for a in status["audit"] if not a["action"].endswith("(started)")]
    assert any("Exchange.ManageAsApp" in c for c in changes) and any("Entra role" in c for c in changes)


def test_a_new_request_before_the_end_renews_the_access(emulator, start_api, targets):
    api = start_api(policy=LIMITED)
    account = targets.automation_account()
    body = {"target": account.id, "organization": emulator.organization}
    first, _ = api.follow(api.post("requests", {**body, "expires": "PT3S"}))
    assert first.json()["status"] == "succeeded"
    second = api.post("requests", {**body, "expires": "PT1H"})
    assert second.status_code == 202, second.text
    renewal, _ = api.follow(second)
    assert (
        renewal.json()["status"] == "succeeded" and renewal.json()["expires_at"] > first.json()["expires_at"]
    )

    # The first end date's work item still comes, finds the access renewed, and leaves it.
    eventually(
        lambda: "renewed since" in api.host.log_file.read_text(),
        timeout=60,
        what="the first expiry to be looked at",
        interval=0.3,
    )
    code, listed, _ = api.exomi.run("list", "--channel", "expiry")
    assert code == 0 and listed == []
    assert emulator.exchange_access(account.identity.principal_id) == (1, [RECIPIENT_ADMIN])


@pytest.fixture
def exomi(emulator, azurite) -> TagRunner:
    return TagRunner(emulator, azurite, policy=policy_for(emulator, **LIMITED))


def test_the_exo_expires_tag_ends_access_and_unchanged_tags_do_not_grant_it_again(
    emulator, exomi, targets, function_host
):
    subscribe(emulator, function_host)
    account = targets.automation_account()
    tags = {"exo-organization": emulator.organization, "exo-expires": "PT3S"}
    put_tags(emulator, account.id, tags)
    (request,) = wait_for_requests(exomi, 1)
    assert wait_until_ended(exomi, request["id"])["status"] == "succeeded"
    assert expiry_revocation(exomi, account.id)["status"] == "revoked"

    # The tags still ask for three seconds of access: a later write does not start them again...
    merge_tags(emulator, account.id, {"cost-center": "4711"})
    eventually(
        lambda: "has expired; write exo-expires again" in function_host.log_file.read_text(),
        what="the write to be handled",
    )
    assert len(wait_for_requests(exomi, 2)) == 2  # the provision and its expiry, nothing more
    assert emulator.exchange_access(account.identity.principal_id) == (0, [])
    # ...writing exo-expires again does.
    merge_tags(emulator, account.id, {"exo-expires": "PT1H"})
    renewed = wait_for_requests(exomi, 3)[-1]
    assert wait_until_ended(exomi, renewed["id"])["status"] == "succeeded"
    assert emulator.exchange_access(account.identity.principal_id) == (1, [RECIPIENT_ADMIN])
