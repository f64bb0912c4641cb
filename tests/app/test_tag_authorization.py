"""Who may ask through tags: the writer an event names must be admitted by a rule of the policy.

Each escalation path of a tag write is shown closed (no grant, no request, a refusal record naming the
rule): a Tag Contributor tagging through the Tags API, an Automation Contributor tagging through the
account's own PATCH, the tagger of a shared user-assigned identity, and somebody else's unrelated write
after a refused tag. The allowed paths still work end to end: the platform admin a rule names, and an
app team Owner inside its resource groups once an approver approved."""

from __future__ import annotations

import httpx
import pytest

from tests.app.tagging import (
    TagRunner,
    delivered,
    eventually,
    merge_tags,
    put_tags,
    requests,
    subscribe,
    wait_for_requests,
    wait_until_ended,
)
from tests.engine.conftest import RG
from tests.engine.test_provision import EXCHANGE_ADMIN, RECIPIENT_ADMIN
from tests.support.actors import Actor, actor
from tests.support.exomi import policy_for

APPROVER_NAME = "secops"


def rg_scope(emulator) -> str:
    return f"/subscriptions/{emulator.subscription_ids[0]}/resourceGroups/{RG}"


@pytest.fixture
def approver(emulator) -> Actor:
    return actor(emulator, APPROVER_NAME)


@pytest.fixture
def exomi(emulator, azurite, approver, request) -> TagRunner:
    """The example policy of docs/POLICY.md, cut down: the platform admin may tag anything allowed; an
    app team member who is Owner or Contributor of a resource in ContosoRG may tag it, with approval.
    A test may add settings (indirect parametrization)."""
    policy = policy_for(
        emulator,
        rules=[
            {"name": "platform-team", "channels": ["tag"], "principals": [emulator.admin_principal_id]},
            {
                "name": "app-team",
                "channels": ["tag"],
                "target_roles": ["Owner", "Contributor"],
                "scopes": [rg_scope(emulator)],
                "roles": ["Exchange Recipient Administrator"],
                "require_approval": True,
            },
        ],
        approval={"approvers": [approver.object_id], "timeout": "PT1H"},
    )
    extra = {"EXOMI_TRUST_APP_SERVICE_AUTH": "true", **getattr(request, "param", {})}
    return TagRunner(emulator, azurite, policy=policy, extra=extra)


@pytest.fixture
def subscribed(emulator, function_host):
    subscribe(emulator, function_host)
    return function_host


def created(emulator, resource):
    """The resource, once exomi has handled the events of its creation (nothing to do: no opt-in tag),
    so that the next write's event is the one that decides."""
    delivered(emulator, resource.name)
    return resource


def refusals(exomi) -> list[dict]:
    code, found, stderr = exomi.run("refusals")
    assert code == 0, stderr
    return found


def wait_for_refusals(exomi, count: int) -> list[dict]:
    return eventually(
        lambda: (found := refusals(exomi)) and len(found) >= count and found, what=f"{count} refusal(s)"
    )


def tag_refusal(refusal: dict, who: Actor, role: str) -> None:
    """A tag write's refusal names the writer, the role ARM allowed the write with, the rule and the event."""
    assert (refusal["channel"], refusal["operation"], refusal["rule"]) == ("tag", "provision", "rules")
    assert (refusal["principal_id"], refusal["azure_role"]) == (who.object_id, role)
    assert refusal["event_id"] and role in refusal["reason"]


def test_a_tag_contributor_cannot_grant_exchange_access_by_tagging(emulator, exomi, targets, subscribed):
    account = created(emulator, targets.automation_account())
    tagger = actor(emulator, "tagger", "Tag Contributor", rg_scope(emulator))
    tags = {"exo-organization": emulator.organization, "exo-role": "Exchange Administrator"}
    put_tags(emulator, account.id, tags, credential=tagger.credential)

    (refusal,) = wait_for_refusals(exomi, 1)
    tag_refusal(refusal, tagger, "Tag Contributor")
    assert refusal["target"] == account.id
    assert requests(exomi) == []
    assert emulator.exchange_access(account.identity.principal_id) == (0, [])


def test_an_automation_contributor_tagging_through_the_account_is_refused_and_not_granted_later(
    emulator, exomi, targets, subscribed
):
    account = created(emulator, targets.automation_account())
    operator = actor(emulator, "automation-operator", "Automation Contributor", rg_scope(emulator))
    automation = emulator.automation(credential=operator.credential)
    tags = {"exo-organization": emulator.organization, "exo-role": "Exchange Administrator"}
    automation.automation_account.update(RG, account.name, {"tags": tags})

    (refusal,) = wait_for_refusals(exomi, 1)
    tag_refusal(refusal, operator, "Automation Contributor")

    # The platform admin then changes something else on the account: the tags still ask for what was
    # refused, but that write did not go through the Tags API, so it is not taken as asking again.
    position = len(emulator.event_deliveries())
    emulator.automation().automation_account.update(
        RG, account.name, {"properties": {"publicNetworkAccess": False}}
    )
    assert delivered(emulator, account.name, since=position)
    assert requests(exomi) == [] and len(refusals(exomi)) == 1
    assert emulator.exchange_access(account.identity.principal_id) == (0, [])

    # When the admin writes the tags themself, it is their request, and the platform rule admits it.
    merge_tags(emulator, account.id, tags)
    (request,) = wait_for_requests(exomi, 1)
    assert (request["requested_by"], request["authorized_by"]) == (emulator.admin_client_id, "platform-team")
    assert wait_until_ended(exomi, request["id"])["status"] == "succeeded"
    assert emulator.exchange_access(account.identity.principal_id) == (1, [EXCHANGE_ADMIN])


# The settle time is long here so that the admin's request cannot start before the next event is handled
# on a slow machine: what is shown is that the refusal cancels it, not how soon.
@pytest.mark.parametrize("exomi", [{"EXOMI_TAG_SETTLE_SECONDS": "60"}], indirect=True)
def test_tags_a_refused_writer_wrote_over_the_admins_are_not_granted_in_the_admins_name(
    emulator, exomi, targets, subscribed
):
    """Events carry no tags, and Event Grid delivers a little after the write: the admin's event, handled
    after a Tag Contributor overwrote the admin's tags through the Tags API, reads the contributor's tags.
    Who wrote those values the event cannot tell, so the request it made must not run: the refusal of the
    contributor's write cancels it before it starts."""
    identity = created(emulator, targets.user_assigned_identity("RacedMI"))
    tagger = actor(emulator, "tagger", "Tag Contributor", rg_scope(emulator))
    organization = emulator.organization
    emulator.ctl("PATCH", "/eventgrid/behaviour", {"paused": True})
    put_tags(
        emulator,
        identity.id,
        {"exo-organization": organization, "exo-role": "Exchange Recipient Administrator"},
    )
    put_tags(
        emulator,
        identity.id,
        {"exo-organization": organization, "exo-role": "Exchange Administrator"},
        credential=tagger.credential,
    )
    emulator.ctl("PATCH", "/eventgrid/behaviour", {"paused": False})

    (refusal,) = wait_for_refusals(exomi, 1)
    tag_refusal(refusal, tagger, "Tag Contributor")
    (request,) = wait_for_requests(exomi, 1)
    assert request["requested_by"] == emulator.admin_client_id  # the first event's writer
    assert refusal["request_id"] == request["id"]  # the refusal names the request it cancelled
    final = wait_until_ended(exomi, request["id"])
    assert final["status"] == "cancelled", final
    assert "a writer the policy refuses" in final["message"]
    assert emulator.exchange_access(identity.principal_id) == (0, [])


@pytest.mark.parametrize("exomi", [{"EXOMI_TAG_SETTLE_SECONDS": "15"}], indirect=True)
def test_the_same_two_writes_delivered_at_once_grant_nothing_either(emulator, exomi, targets, subscribed):
    """Event Grid may deliver both events at the same time: whichever handler decides first, the other
    one's decision holds too (the tag state is written over what each read, and a request whose tags
    were refused after it was made does not start), so the refused writer's tags are never granted."""
    identity = created(emulator, targets.user_assigned_identity("ConcurrentMI"))
    tagger = actor(emulator, "tagger", "Tag Contributor", rg_scope(emulator))
    organization = emulator.organization
    emulator.ctl("PATCH", "/eventgrid/behaviour", {"paused": True})
    put_tags(
        emulator,
        identity.id,
        {"exo-organization": organization, "exo-role": "Exchange Recipient Administrator"},
    )
    put_tags(
        emulator,
        identity.id,
        {"exo-organization": organization, "exo-role": "Exchange Administrator"},
        credential=tagger.credential,
    )
    emulator.ctl("PATCH", "/eventgrid/behaviour", {"paused": False, "concurrent": True})

    assert len(delivered(emulator, identity.name)) >= 2  # both answered
    found = refusals(exomi)
    assert found and all(r["principal_id"] == tagger.object_id for r in found)
    for request in requests(exomi):
        final = wait_until_ended(exomi, request["id"])
        assert final["status"] == "cancelled", final
    assert emulator.exchange_access(identity.principal_id) == (0, [])


def test_the_tagger_of_a_shared_user_assigned_identity_is_refused(emulator, exomi, targets, subscribed):
    shared = created(emulator, targets.user_assigned_identity("SharedMI"))
    owner_of_identity = actor(emulator, "mi-operator", "Managed Identity Contributor", rg_scope(emulator))
    msi = emulator.msi(credential=owner_of_identity.credential)
    msi.user_assigned_identities.update(RG, "SharedMI", {"tags": {"exo-organization": emulator.organization}})

    (refusal,) = wait_for_refusals(exomi, 1)
    tag_refusal(refusal, owner_of_identity, "Managed Identity Contributor")
    assert refusal["target"].lower() == shared.id.lower()
    assert requests(exomi) == []
    assert emulator.exchange_access(shared.principal_id) == (0, [])


def test_an_app_team_owner_may_tag_inside_its_scope_once_approved(
    emulator, exomi, targets, subscribed, approver
):
    account = created(emulator, targets.automation_account())
    owner = actor(emulator, "app-owner", "Owner", rg_scope(emulator))
    put_tags(emulator, account.id, {"exo-organization": emulator.organization}, credential=owner.credential)

    (request,) = wait_for_requests(exomi, 1)
    assert (request["status"], request["authorized_by"]) == ("awaiting_approval", "app-team")
    assert request["approval"]["reasons"] == ["rule 'app-team' requires approval"]
    assert emulator.exchange_access(account.identity.principal_id) == (0, [])  # nothing before approval

    api = httpx.Client(base_url=subscribed.url, headers={"x-functions-key": subscribed.info["function_key"]})
    decision = api.post(
        f"/api/requests/{request['id']}/approval",
        json={"decision": "approve", "comment": "change CHG-1"},
        headers=approver.easy_auth(),
    )
    assert decision.status_code == 200, decision.text
    assert decision.json()["approval"]["decided_by"] == approver.name
    final = wait_until_ended(exomi, request["id"])
    assert final["status"] == "succeeded"
    assert emulator.exchange_access(account.identity.principal_id) == (1, [RECIPIENT_ADMIN])
    code, status, _ = exomi.run("status", request["id"])
    approvals = [a for a in status["audit"] if a["step"] == "approval"]
    assert [(a["action"], a["requested_by"]) for a in approvals] == [
        (f"request approved by {approver.name}", approver.name)
    ]

    # The same owner may not ask for more than the rule allows: refused, nothing changes.
    merge_tags(emulator, account.id, {"exo-role": "Exchange Administrator"}, credential=owner.credential)
    (refusal,) = wait_for_refusals(exomi, 1)
    assert "does not allow the role 'Exchange Administrator'" in refusal["reason"]
    assert emulator.exchange_access(account.identity.principal_id) == (1, [RECIPIENT_ADMIN])
