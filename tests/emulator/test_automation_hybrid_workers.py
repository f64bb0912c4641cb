"""Hybrid Runbook Worker groups through the real SDK: create, read (the spec example's shape), list,
update, delete, the 404s, and a job started on a group (queued: no worker machine is emulated)."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from tests.support.automation import ACCOUNT, RG, body_of, create_account, publish_runbook, raw_response
from tests.support.shapes import assert_shape, load_example


@pytest.fixture(autouse=True)
def quick_polls(emulator):
    emulator.set_timings(retry_after=0)


def test_worker_groups_are_created_read_listed_updated_and_deleted(emulator):
    create_account(emulator)
    client = emulator.automation()
    groups = client.hybrid_runbook_worker_group

    created = groups.create(RG, ACCOUNT, "ContosoWorkers", {"properties": {"credential": {"name": "RunAs"}}})
    raw = groups.get(RG, ACCOUNT, "contosoworkers", cls=raw_response)

    assert created.name == "ContosoWorkers" and created.group_type == "User"
    assert_shape(load_example("automation_getHybridRunbookWorkerGroup.json")["body"], body_of(raw))
    assert body_of(raw)["id"].endswith(
        f"/automationAccounts/{ACCOUNT}/hybridRunbookWorkerGroups/ContosoWorkers"
    )
    assert [g.name for g in groups.list_by_automation_account(RG, ACCOUNT)] == ["ContosoWorkers"]
    updated = groups.update(RG, ACCOUNT, "ContosoWorkers", {"properties": {"credential": {"name": "Other"}}})
    assert updated.credential.name == "Other"

    groups.delete(RG, ACCOUNT, "ContosoWorkers")
    with pytest.raises(ResourceNotFoundError) as info:
        groups.get(RG, ACCOUNT, "ContosoWorkers")
    assert info.value.error.code == "ResourceNotFound"
    with pytest.raises(ResourceNotFoundError) as info:
        groups.get(RG, "NoSuchAccount", "ContosoWorkers")
    assert info.value.error.code == "ParentResourceNotFound"
    with pytest.raises(HttpResponseError) as info:
        groups.create(RG, ACCOUNT, "bad/name?", {})
    assert info.value.status_code in (400, 404)


def test_a_job_on_a_worker_group_waits_for_a_worker_and_an_unknown_group_is_refused(emulator):
    create_account(emulator)
    client = emulator.automation()
    publish_runbook(client, "Verify", "Write-Output 'hi'")
    client.hybrid_runbook_worker_group.create(RG, ACCOUNT, "ContosoWorkers", {})
    emulator.set_timings(job_start=0.0, job_run=0.0)

    job = client.job.create(
        RG, ACCOUNT, "job-1", {"properties": {"runbook": {"name": "Verify"}, "runOn": "contosoworkers"}}
    )

    assert job.run_on == "ContosoWorkers" and job.status == "Queued"
    assert client.job.get(RG, ACCOUNT, "job-1").status == "Queued"  # no emulated machine picks it up
    with pytest.raises(HttpResponseError) as info:
        client.job.create(
            RG, ACCOUNT, "job-2", {"properties": {"runbook": {"name": "Verify"}, "runOn": "Nope"}}
        )
    assert info.value.status_code == 400 and "'Nope' was not found" in info.value.error.message
