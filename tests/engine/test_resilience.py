"""Replication and propagation delays, a missing Exchange service principal, throttling, and crashes
at every step boundary: the request still ends verified, with no duplicate grant and no lost audit."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time

import pytest

from tests.engine.test_provision import assert_succeeded, exchange_grants, grants_of

# The first call of every step (a kill there is a kill between steps) and every write (a kill there is
# a kill between the call and the step's record). Fault paths are regexes over the request path.
BOUNDARIES = [
    ("identity: read the account", "GET", r"/automationAccounts/ContosoAzAuto1$"),
    ("principal: read it in Graph", "GET", r"^/v1\.0/servicePrincipals/[0-9a-f-]{36}$"),
    ("exchange-sp: find it", "GET", r"servicePrincipals\(appId="),
    ("app-role: list grants", "GET", r"/appRoleAssignments$"),
    ("app-role: grant", "POST", r"/appRoleAssignments$"),
    ("entra-role: list", "GET", r"/roleManagement/directory/roleAssignments$"),
    ("entra-role: assign", "POST", r"/roleManagement/directory/roleAssignments$"),
    ("modules: import", "PUT", r"/modules/ExchangeOnlineManagement$"),
    ("runbook: create", "PUT", r"/runbooks/exomi-connect-exchange$"),
    ("runbook: draft", "PUT", r"/runbooks/exomi-connect-exchange/draft/content$"),
    ("runbook: publish", "POST", r"/runbooks/exomi-connect-exchange/publish$"),
    ("verify: start the job", "PUT", r"/jobs/[0-9a-f-]{36}$"),
]


async def _wait_for(predicate, what: str, deadline_seconds: float = 60):
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize(("label", "method", "path"), BOUNDARIES, ids=[b[0] for b in BOUNDARIES])
async def test_a_crash_at_every_boundary_resumes_without_duplicates_or_lost_audit(
    emulator, exomi, targets, label, method, path
):
    account = targets.automation_account()
    fault = emulator.add_fault(path=path, method=method, kind="latency", latency_ms=1500, count=1)
    process = exomi.start("provision", "--target", account.id, "--organization", emulator.organization)

    def fired():
        return next(f for f in emulator.ctl("GET", "/faults")["faults"] if f["id"] == fault["id"])["fired"]

    await _wait_for(fired, f"the engine to reach '{label}'")
    os.kill(process.pid, signal.SIGKILL)  # in the middle of the call: the emulator still completes it
    process.wait()

    def ended():  # the emulator logs the faulted call once it is over: answered, or its client gone
        return [
            e for e in emulator.log() if e["method"] == method and re.search(path, e["path"]) and e["fault"]
        ]

    await _wait_for(ended, f"the emulator to finish '{label}'")

    code, requests, _ = exomi.run("list")
    assert code == 0 and len(requests) == 1 and requests[0]["status"] in ("running", "waiting", "queued")
    code, output, stderr = exomi.run("resume", requests[0]["id"])
    assert_succeeded(code, output, stderr)

    app_roles, roles = await grants_of(emulator, account.identity.principal_id)
    assert len(exchange_grants(app_roles, emulator.exchange_service_principal_id)) == 1
    assert len(roles) == 1
    code, status, _ = exomi.run("status", requests[0]["id"])
    audit = {(a["step"], a["sequence"]): a for a in status["audit"]}
    started = [key for key, a in audit.items() if a["action"].endswith("(started)")]
    assert started, "changes are audited"
    missing_results = [audit[k]["action"] for k in started if (k[0], k[1] + 1) not in audit]
    assert missing_results == []
    changes = [a["action"] for a in status["audit"] if not a["action"].endswith("(started)")]
    assert sum("grant Exchange.ManageAsApp" in c for c in changes) == 1
    assert sum("assign Entra role" in c for c in changes) == 1


async def test_a_fresh_identity_under_replication_delay_succeeds_after_retries(emulator, exomi, targets):
    # Deterministic: the principal stays invisible to Graph until the test releases it, after exomi has
    # met the replication window twice (no race with a timer or with the CLI's start-up time).
    emulator.ctl("PUT", "/replication", {"held": True})
    account = targets.automation_account()
    principal_id = account.identity.principal_id
    process = exomi.start("provision", "--target", account.id, "--organization", emulator.organization)

    def misses():
        return [e for e in emulator.log(service="graph") if e["status"] == 404 and principal_id in e["path"]]

    await _wait_for(lambda: len(misses()) >= 2, "exomi to meet the replication window twice")
    emulator.ctl("POST", f"/principals/{principal_id}/replicate")
    stdout, stderr = process.communicate(timeout=120)
    output = json.loads(stdout)
    assert_succeeded(process.returncode, output, stderr)
    principal_step = next(s for s in output["steps"] if s["name"] == "principal")
    assert principal_step["attempts"] > 1


async def test_a_grant_under_propagation_delay_verifies_after_waiting(emulator, exomi, targets):
    # Deterministic: the grants do not reach Exchange until the test releases them, after the first
    # verification job has failed (no race with the emulated propagation time).
    emulator.ctl("PUT", "/propagation", {"held": True})
    account = targets.automation_account()
    automation = emulator.automation()
    process = exomi.start("provision", "--target", account.id, "--organization", emulator.organization)

    def failed_jobs():
        jobs = automation.job.list_by_automation_account("ContosoRG", account.name)
        return [j for j in jobs if str(j.status.value) == "Failed"]

    await _wait_for(failed_jobs, "the first verification job to fail")
    emulator.ctl("PUT", "/propagation", {"held": False})
    stdout, stderr = process.communicate(timeout=120)
    assert_succeeded(process.returncode, json.loads(stdout), stderr)
    jobs = sorted(
        automation.job.list_by_automation_account("ContosoRG", account.name), key=lambda j: j.creation_time
    )
    statuses = [str(j.status.value) for j in jobs]
    assert statuses[0] == "Failed" and statuses[-1] == "Completed"
    first = automation.job.get("ContosoRG", account.name, jobs[0].name)
    assert "UnAuthorized" in first.properties.exception or "isn't supported" in first.properties.exception


async def test_a_token_taken_before_the_grants_propagated_waits_for_the_cache_and_then_verifies(
    emulator, exomi, targets
):
    # The first verification job connects while the grants are held back, so the token it takes has no
    # Exchange roles and its host caches it (for 10 minutes here). After the grants propagate, a job within
    # that time is still refused; exomi reports pending propagation and keeps trying until the cached
    # token ends (the test ends it, as the passing of time would).
    emulator.set_timings(token_cache=600)
    emulator.ctl("PUT", "/propagation", {"held": True})
    account = targets.automation_account()
    principal_id = account.identity.principal_id
    automation = emulator.automation()
    process = exomi.start("provision", "--target", account.id, "--organization", emulator.organization)

    def failed_jobs():
        jobs = automation.job.list_by_automation_account("ContosoRG", account.name)
        return [j for j in jobs if str(j.status.value) == "Failed"]

    await _wait_for(failed_jobs, "the first verification job to fail")
    emulator.ctl("PUT", "/propagation", {"held": False})
    await _wait_for(lambda: len(failed_jobs()) >= 2, "a job after propagation to meet the cached token")
    (token,) = [t for t in emulator.exchange_tokens() if t["principal_id"] == principal_id]
    assert token["has_exchange_app_role"] is False  # taken while the grants were held back
    _, requests, _ = exomi.run("list")
    (request,) = requests

    def pending_verification():
        # Between tests the step says why it waits; while a new test job runs it says that instead, so
        # look until a look falls between two jobs (most of each cycle: the wait is longer than a job).
        _, status, _ = exomi.run("status", request["id"])
        verify = next(s for s in status["steps"] if s["name"] == "verify")
        pending = verify["message"].startswith("pending propagation: Exchange Online refused the identity")
        return status if pending else None

    status = await _wait_for(pending_verification, "the status to report pending propagation")
    verify = next(s for s in status["steps"] if s["name"] == "verify")
    assert status["status"] in ("waiting", "running")
    assert "cached for up to 24 hours" in verify["message"]

    emulator.expire_exchange_tokens()
    stdout, stderr = process.communicate(timeout=120)
    assert_succeeded(process.returncode, json.loads(stdout), stderr)
    statuses = [
        str(j.status.value) for j in automation.job.list_by_automation_account("ContosoRG", account.name)
    ]
    assert statuses.count("Completed") == 1 and statuses.count("Failed") >= 2


async def test_a_tenant_without_the_exchange_service_principal_gets_it_created(emulator, exomi, targets):
    emulator.reset(with_exchange_sp=False)
    targets.__init__(emulator)
    account = targets.automation_account()
    code, output, stderr = exomi.run(
        "provision", "--target", account.id, "--organization", emulator.organization
    )
    assert_succeeded(code, output, stderr)
    created = [
        e
        for e in emulator.log(service="graph")
        if e["method"] == "POST" and e["path"] == "/v1.0/servicePrincipals" and e["status"] == 201
    ]
    assert len(created) == 1 and created[0]["caller_id"] == emulator.app_principal_id


async def test_throttling_and_server_errors_are_retried(emulator, exomi, targets):
    account = targets.automation_account()
    emulator.add_fault(path=r"/appRoleAssignments$", method="POST", status=429, retry_after=1, count=4)
    emulator.add_fault(path=r"/modules/", method="PUT", status=503, count=5)
    code, output, stderr = exomi.run(
        "provision", "--target", account.id, "--organization", emulator.organization
    )
    assert_succeeded(code, output, stderr)
    app_roles, _ = await grants_of(emulator, account.identity.principal_id)
    assert len(exchange_grants(app_roles, emulator.exchange_service_principal_id)) == 1
