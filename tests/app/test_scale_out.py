"""Scale-out: two instances of the Function app (two devhost processes, as Azure runs two instances)
on one storage account and one work queue, every work item delivered twice (Queue Storage delivers at
least once), Graph and ARM writes answered 429 and 500 now and then, and one instance killed in the
middle of a pass. Every request ends succeeded, each grant is made exactly once, nothing is lost,
nothing is left running, nothing is poisoned."""

from __future__ import annotations

import re
from collections import Counter

import httpx
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient

from shared.work_queue import encode
from tests.engine.test_provision import RECIPIENT_ADMIN
from tests.support.api import Api
from tests.support.polling import eventually

ACTIVE = {"queued", "running", "waiting"}
APP_ROLE_POST = re.compile(r"^/v1\.0/servicePrincipals/([0-9a-f-]{36})/appRoleAssignments$", re.IGNORECASE)
ROLE_POST = re.compile(r"^/v1\.0/roleManagement/directory/roleAssignments$", re.IGNORECASE)
# Short leases, so that a dead instance's request is taken over within seconds; a request whose work item
# a dead instance had fetched (queued, or due) is queued again by the resume pass after one second.
SETTINGS = {
    "EXOMI_LEASE_SECONDS": "2",
    "EXOMI_QUEUED_GRACE_SECONDS": "1",
    "EXOMI_RESUME_GRACE_SECONDS": "1",
    "AzureWebJobs.resume_requests.Disabled": "false",  # run by the test (admin API), and every 30 s
}


def duplicate_every_work_item(azurite: str, request_ids: list[str]) -> None:
    queue = QueueClient.from_connection_string(azurite, "exomi-work")
    for request_id in request_ids:
        queue.send_message(encode(request_id))  # base64 already, as the host expects (messageEncoding)


def poisoned(azurite: str) -> list[str]:
    queue = QueueClient.from_connection_string(azurite, "exomi-work-poison")
    try:
        return [m.content for m in queue.peek_messages(max_messages=32)]
    except ResourceNotFoundError:
        return []


def resume(api: Api) -> None:
    """The resume pass (its timer, run now on the surviving instance): what a dead instance held."""
    answer = httpx.post(
        f"{api.url}/admin/functions/resume_requests",
        json={"input": ""},
        headers={"x-functions-key": api.host.info["master_key"]},
    )
    assert answer.status_code == 202


def test_two_instances_with_faults_and_a_dead_one_grant_once_and_lose_nothing(
    emulator, azurite, targets, start_api
):
    first = start_api(env=SETTINGS)
    accounts = [targets.automation_account(f"ContosoAzAuto{i}") for i in range(1, 4)]
    identities = [targets.user_assigned_identity(f"ContosoMI{i}") for i in range(1, 5)]
    principals = [a.identity.principal_id for a in accounts] + [i.principal_id for i in identities]
    ids = [a.id for a in accounts] + [i.id for i in identities]

    # The first import any instance asks for hangs: the instance that sent it dies in the middle of it.
    hang = emulator.add_fault(
        path=r"/modules/ExchangeOnlineManagement$", method="PUT", kind="latency", latency_ms=15000, count=1
    )
    # Writes refused now and then (one rule fires per call: the first matching one that has not run out).
    for path, method, status, count in (
        (r"/appRoleAssignments$", "POST", 429, 2),
        (r"/appRoleAssignments$", "POST", 500, 2),
        (r"/roleManagement/directory/roleAssignments$", "POST", 429, 2),
        (r"/roleManagement/directory/roleAssignments$", "POST", 500, 1),
        (r"/modules/", "PUT", 429, 2),
        (r"/modules/", "PUT", 500, 1),
        (r"/runbooks/[^/]+$", "PUT", 500, 1),
    ):
        emulator.add_fault(path=path, method=method, status=status, count=count, retry_after=1)

    victim = first.post("requests", {"target": ids[0], "organization": emulator.organization})
    assert victim.status_code == 202, victim.text

    def hanging() -> bool:
        return next(f for f in emulator.ctl("GET", "/faults")["faults"] if f["id"] == hang["id"])["fired"] > 0

    eventually(hanging, timeout=60, what="the first instance to reach the module import", interval=0.1)
    second = start_api(env=SETTINGS, instance_of=first)  # Azure scales out: a second instance
    accepted = [victim] + [
        (second if n % 2 else first).post(
            "requests", {"target": target, "organization": emulator.organization}
        )
        for n, target in enumerate(ids[1:])
    ]
    assert [a.status_code for a in accepted] == [202] * len(ids), [a.text for a in accepted]
    request_ids = [a.json()["id"] for a in accepted]
    duplicate_every_work_item(azurite, request_ids)  # both instances race for the same requests

    def some_ended_on_the_second() -> bool:
        listed = second.get("requests").json()["value"]
        return sum(1 for r in listed if r["status"] == "succeeded") >= 2

    eventually(some_ended_on_the_second, timeout=90, what="two requests to end", interval=0.5)
    first.host.process.kill()  # in the middle of its pass of the first request (the import still hangs)
    first.host.process.wait()

    def all_ended() -> list[dict]:
        listed = second.get("requests", params={"page_size": 50}).json()["value"]
        if any(r["status"] in ACTIVE for r in listed):
            resume(second)  # leases run out in 2 s; queued or due requests are queued again after 1 s
            return []
        return listed

    ended = eventually(all_ended, timeout=180, what="every request to end", interval=2)
    assert sorted(r["id"] for r in ended) == sorted(request_ids)  # none lost, none made twice
    assert {r["id"]: r["status"] for r in ended} == dict.fromkeys(request_ids, "succeeded")
    assert poisoned(azurite) == []

    # Each identity holds one Exchange.ManageAsApp grant and one Entra role, and each was written once:
    # no two passes worked on one request at once (the second would have been told "already exists").
    for principal in principals:
        assert emulator.exchange_access(principal) == (1, [RECIPIENT_ADMIN]), principal
    grants = [e for e in emulator.log(service="graph") if e["method"] == "POST"]
    app_roles = Counter(
        match.group(1).lower()
        for e in grants
        if e["status"] == 201 and (match := APP_ROLE_POST.match(e["path"]))
    )
    assert app_roles == Counter(p.lower() for p in principals)
    assert sum(1 for e in grants if e["status"] == 201 and ROLE_POST.match(e["path"])) == len(principals)
    assert [e for e in grants if e["status"] == 400] == []


def test_two_instances_granting_one_shared_identity_at_once_grant_it_once_and_keep_it_for_both(
    emulator, azurite, targets, start_api
):
    first = start_api(env=SETTINGS)
    second = start_api(env=SETTINGS, instance_of=first)
    shared = targets.user_assigned_identity("SharedMI")
    accounts = [
        targets.automation_account(f"ContosoAzAuto{i}", system=False, user_assigned=[shared.id])
        for i in (1, 2)
    ]
    body = [{"target": a.id, "organization": emulator.organization, "identity": shared.id} for a in accounts]
    accepted = [first.post("requests", body[0]), second.post("requests", body[1])]
    assert [a.status_code for a in accepted] == [202, 202], [a.text for a in accepted]
    request_ids = [a.json()["id"] for a in accepted]
    duplicate_every_work_item(azurite, request_ids)
    finals = [first.follow_id(request_id)[0].json() for request_id in request_ids]
    assert [f["status"] for f in finals] == ["succeeded", "succeeded"], finals
    assert emulator.exchange_access(shared.principal_id) == (1, [RECIPIENT_ADMIN])

    # Both requests are recorded as users of the grant (the ownership ledger, written by two instances
    # at once): taking one account's access away keeps the identity's grants for the other.
    revoked = second.post("revocations", {"target": accounts[0].id})
    assert revoked.status_code == 202, revoked.text
    assert second.follow(revoked)[0].json()["status"] == "revoked"
    assert emulator.exchange_access(shared.principal_id) == (1, [RECIPIENT_ADMIN])
    revoked = first.post("revocations", {"target": accounts[1].id})
    assert first.follow(revoked)[0].json()["status"] == "revoked"
    assert emulator.exchange_access(shared.principal_id) == (0, [])
