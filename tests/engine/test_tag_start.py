"""A tag request does not start when a refused writer wrote its tags after it was made, and one that
started before the refused write's event came is named in that refusal.

Event Grid may deliver two tag writes of one target at the same time. A refused writer's delivery
handled alongside an allowed writer's records its refusal of the tags in the target's tag state, but may
not yet see the request the other delivery is making, so it cannot cancel it. The request waits the tag
settle time before it starts; when it would start, the refusal of its own desired state decides. Shown
here through the service layer, with the tag state as such a delivery leaves it."""

from __future__ import annotations

from shared.ids import parse_resource_id
from shared.models import Channel, Requester, RequesterKind, RequestStatus
from shared.service import ExomiApp, ExomiService
from shared.settings import Settings
from shared.state.records import utcnow
from shared.tagging import REFUSED_WRITER, Desired, TagWrite
from shared.work_queue import WorkItem
from tests.engine.conftest import RG
from tests.support.actors import actor
from tests.support.exomi import ExomiRunner

TAGS_WRITE = "Microsoft.Resources/tags/write"


async def test_a_tag_request_whose_tags_were_refused_after_it_was_made_does_not_start(
    emulator, azurite, targets
):
    emulator.set_timings(replication_delay=0)
    identity = targets.user_assigned_identity("RefusedSinceMI")
    tags = {"exo-organization": emulator.organization, "exo-role": "Exchange Administrator"}
    emulator.resources().tags.begin_create_or_update_at_scope(
        identity.id, {"properties": {"tags": tags}}
    ).result()
    admin = Requester(
        kind=RequesterKind.ARM,
        name=emulator.admin_client_id,
        principal_id=emulator.admin_principal_id,
        write_operation=TAGS_WRITE,
    )
    env = {**ExomiRunner(emulator, azurite).env(), "EXOMI_TAG_SETTLE_SECONDS": "600"}
    async with await ExomiApp.open(Settings.load(env)) as app:
        service = ExomiService(app)
        outcome = await service.sync_tags(parse_resource_id(identity.id), TagWrite(admin, "event-admin"))
        request = outcome.request
        assert request is not None and request.status is RequestStatus.QUEUED
        assert (request.channel, request.requested_by) == (Channel.TAG, emulator.admin_client_id)

        # The tagger's delivery, handled at the same time, refused the same tags after the request was made.
        state = await app.state.targets.tag_state(request.target_key)
        refused = {"refused_desired": Desired.of_request(request).fingerprint(), "refused_by": "tagger"}
        await app.state.targets.save_tag_state(
            request.target_key, request.target, state.model_copy(update=refused)
        )

        await service.work(WorkItem(request_id=request.id))  # its work item, once the settle time is over
        final = await service.find(request.id)
        audit = await app.state.audit.list_for_request(request.id)

    assert final is not None and final.status is RequestStatus.CANCELLED
    assert REFUSED_WRITER in (final.message or "")
    assert [(a.action, a.requested_by) for a in audit if a.step == "request" and "cancelled" in a.action] == [
        (f"request cancelled: superseded ({REFUSED_WRITER})", "tagger")
    ]
    assert emulator.exchange_access(identity.principal_id) == (0, [])


async def test_a_refused_write_delivered_after_the_request_that_read_its_tags_started_names_it(
    emulator, azurite, targets
):
    """The refused writer's event comes late (a retried delivery, after the settle time): the admin's
    request, made from an event handled after that write, has already granted what the tags said. The
    refusal names that request, for whoever reviews the refusal log; exomi does not undo it."""
    emulator.set_timings(replication_delay=0)
    identity = targets.user_assigned_identity("LateRefusalMI")
    scope = f"/subscriptions/{emulator.subscription_id}/resourceGroups/{RG}"
    tagger = actor(emulator, "late-tagger", "Tag Contributor", scope)
    organization = emulator.organization
    tags = emulator.resources().tags
    admin_wrote = utcnow()
    tags.begin_create_or_update_at_scope(
        identity.id,
        {
            "properties": {
                "tags": {"exo-organization": organization, "exo-role": "Exchange Recipient Administrator"}
            }
        },
    ).result()
    tagger_wrote = utcnow()
    emulator.resources(credential=tagger.credential).tags.begin_create_or_update_at_scope(
        identity.id,
        {"properties": {"tags": {"exo-organization": organization, "exo-role": "Exchange Administrator"}}},
    ).result()
    admin = Requester(
        kind=RequesterKind.ARM,
        name=emulator.admin_client_id,
        principal_id=emulator.admin_principal_id,
        write_operation=TAGS_WRITE,
    )
    writer = Requester(
        kind=RequesterKind.ARM,
        name=tagger.name,
        principal_id=tagger.object_id,
        azure_role="Tag Contributor",
        write_operation=TAGS_WRITE,
    )
    target = parse_resource_id(identity.id)
    env = ExomiRunner(emulator, azurite).env()
    async with await ExomiApp.open(Settings.load(env)) as app:
        service = ExomiService(app)
        made = await service.sync_tags(target, TagWrite(admin, "event-admin", admin_wrote))
        assert made.request is not None
        granted = await service.run_to_end(made.request.id)  # it ran before the tagger's event came

        outcome = await service.sync_tags(target, TagWrite(writer, "event-tagger", tagger_wrote))
        refusals = (await app.state.refusals.list()).items

    assert granted.status is RequestStatus.SUCCEEDED  # what stays open (docs/POLICY.md): it ran
    assert "refused" in outcome.text
    (refusal,) = [r for r in refusals if r.event_id == "event-tagger"]
    assert (refusal.principal_id, refusal.request_id) == (tagger.object_id, granted.id)
