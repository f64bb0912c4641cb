"""Rate limits: ARM's, Graph's and Automation's token buckets, their 429s and headers, through the real
SDK clients. The buckets run on the manual clock (tests/support/emulator.py ``set_rate_limits``): a burst
never refills between calls, and time moves on only when a caller waited out its Retry-After or the
test advances it, so no assertion depends on how fast the machine is."""

from __future__ import annotations

import uuid

import httpx
import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.automation import AutomationClient

from emulator import directory_data as dd
from emulator.process import EmulatorProcess
from emulator.ratelimits import Charge, RateLimitConfig, RateLimiter
from tests.emulator.test_graph_app_role_assignments import grant
from tests.support.automation import (
    ACCOUNT,
    RG,
    create_account,
    gallery_link,
    publish_runbook,
    start_job,
)

MANAGE_AS_APP = dd.EXCHANGE_MANAGE_AS_APP_ROLE_ID
RATE_HEADER = "x-ms-ratelimit-remaining-"


class Responses:
    """``raw_response_hook`` that keeps every HTTP answer the SDK saw, its retries included."""

    def __init__(self) -> None:
        self.seen: list = []

    def __call__(self, pipeline_response) -> None:
        self.seen.append(pipeline_response.http_response)

    @property
    def statuses(self) -> list[int]:
        return [r.status_code for r in self.seen]

    def header(self, name: str) -> list[str | None]:
        return [r.headers.get(name) for r in self.seen]


def arm_get(emulator, path: str, *, client_id: str | None = None):
    """One ARM GET without the SDK's retries (to look at a 429 itself)."""
    token = emulator.token(client_id=client_id)
    with emulator.http() as http:
        return http.get(
            f"{emulator.arm_endpoint}/subscriptions/{emulator.subscription_id}{path}",
            params={"api-version": "2025-04-01"},
            headers={"Authorization": f"Bearer {token}"},
        )


def grant_body(principal_id: str, resource_id: str) -> dict[str, str]:
    return {"principalId": principal_id, "resourceId": resource_id, "appRoleId": MANAGE_AS_APP}


# --------------------------------------------------------------------------------------------------
# Off by default


async def test_without_rate_limits_nothing_is_throttled_and_no_answer_carries_limit_headers(emulator):
    client = emulator.resources()
    responses = Responses()
    for i in range(30):
        client.resource_groups.create_or_update(f"rg{i}", {"location": "westus"}, raw_response_hook=responses)
        client.resource_groups.get(f"rg{i}", raw_response_hook=responses)
    assert set(responses.statuses) == {200, 201}
    assert not [h for r in responses.seen for h in r.headers if h.lower().startswith(RATE_HEADER)]
    graph = emulator.graph_http("GET", "/servicePrincipals", as_app=True)
    assert graph.status_code == 200
    assert not [h for h in graph.headers if h.lower().startswith(("x-ms-resource-unit", "x-ms-throttle"))]
    assert 429 not in [e["status"] for e in emulator.log()]
    assert emulator.rate_limits()["config"]["enabled"] is False


def test_a_reset_turns_limits_back_to_the_start_up_configuration(emulator):
    emulator.set_rate_limits(limits={"arm_reads": {"size": 1}})
    assert arm_get(emulator, "/resourcegroups").headers[f"{RATE_HEADER}subscription-reads"] == "0"
    emulator.reset()
    response = arm_get(emulator, "/resourcegroups")
    assert response.status_code == 200 and f"{RATE_HEADER}subscription-reads" not in response.headers


# --------------------------------------------------------------------------------------------------
# Azure Resource Manager


def test_the_fourth_write_of_a_burst_is_throttled_and_the_sdk_retry_then_succeeds(emulator):
    emulator.set_rate_limits(limits={"arm_writes": {"size": 3, "refill_per_second": 1}})
    client = emulator.resources()
    responses = Responses()
    for i in range(4):
        client.resource_groups.create_or_update(f"rg{i}", {"location": "westus"}, raw_response_hook=responses)

    assert responses.statuses == [201, 201, 201, 429, 201]
    assert responses.header(f"{RATE_HEADER}subscription-writes") == ["2", "1", "0", "0", "0"]
    # The subscription-wide bucket (15 times the principal's) counts the same writes.
    assert responses.header(f"{RATE_HEADER}subscription-global-writes") == [
        "2999",
        "2998",
        "2997",
        "2997",
        "2999",  # the second the SDK waited refilled it (150 a second, at most 3,000)
    ]
    throttled = responses.seen[3]
    assert throttled.headers["Retry-After"] == "1"
    error = throttled.json()["error"]
    assert error["code"] == "SubscriptionRequestsThrottled"
    assert error["message"] == (
        f"Number of 'write' requests for subscription '{emulator.subscription_id}' actor "
        f"'{emulator.admin_principal_id}' exceeded. Please try again after '1' seconds after additional tokens "
        "are available. Refer to https://aka.ms/arm-throttling for additional information."
    )
    assert client.resource_groups.get("rg3").name == "rg3"
    writes = [e for e in emulator.log() if e["method"] == "PUT"]
    assert [e["status"] for e in writes] == [201, 201, 201, 429, 201]
    # The control API counts the 429 it answered, under the bucket that was empty.
    assert emulator.rate_limits()["throttled"] == {"arm_writes": 1, "total": 1}
    emulator.set_rate_limits()
    assert emulator.rate_limits()["throttled"] == {"total": 0}  # configuring starts the count again


def test_reads_writes_and_deletes_draw_from_separate_buckets(emulator):
    client = emulator.resources()
    client.resource_groups.create_or_update("rg", {"location": "westus"})
    emulator.set_rate_limits(
        limits={name: {"size": 2} for name in ("arm_reads", "arm_writes", "arm_deletes")}
    )
    assert arm_get(emulator, "/resourcegroups/rg").status_code == 200
    assert arm_get(emulator, "/resourcegroups/rg").status_code == 200
    refused = arm_get(emulator, "/resourcegroups/rg")
    assert refused.status_code == 429 and "Number of 'read' requests" in refused.json()["error"]["message"]
    assert refused.headers[f"{RATE_HEADER}subscription-reads"] == "0"

    responses = Responses()
    client.resource_groups.create_or_update("rg", {"location": "westus"}, raw_response_hook=responses)
    client.resource_groups.begin_delete("rg", raw_response_hook=responses, polling=False)
    written, deleted = responses.seen
    assert written.status_code == 200 and written.headers[f"{RATE_HEADER}subscription-writes"] == "1"
    assert f"{RATE_HEADER}subscription-reads" not in written.headers
    assert deleted.status_code in (200, 202) and deleted.headers[f"{RATE_HEADER}subscription-deletes"] == "1"
    assert deleted.headers[f"{RATE_HEADER}subscription-global-deletes"] == "2999"


def test_each_principal_has_its_own_bucket_and_all_share_the_subscriptions(emulator):
    emulator.set_rate_limits(limits={"arm_reads": {"size": 2}, "arm_global_reads": {"size": 3}})
    admin = emulator.admin_client_id
    assert arm_get(emulator, "/resourcegroups", client_id=admin).status_code == 200
    assert arm_get(emulator, "/resourcegroups", client_id=admin).status_code == 200
    assert arm_get(emulator, "/resourcegroups", client_id=admin).status_code == 429
    # exomi's own identity still has its whole bucket, but only one token is left subscription-wide.
    first = arm_get(emulator, "/resourcegroups")
    assert first.status_code == 200
    assert first.headers[f"{RATE_HEADER}subscription-reads"] == "1"
    assert first.headers[f"{RATE_HEADER}subscription-global-reads"] == "0"
    second = arm_get(emulator, "/resourcegroups")
    assert second.status_code == 429
    assert second.headers[f"{RATE_HEADER}subscription-reads"] == "1"
    assert second.headers[f"{RATE_HEADER}subscription-global-reads"] == "0"
    assert emulator.app_principal_id in second.json()["error"]["message"]


def test_a_test_can_advance_the_clock_instead_of_waiting(emulator):
    emulator.set_rate_limits(limits={"arm_reads": {"size": 1, "refill_per_second": 0.5}})
    assert arm_get(emulator, "/resourcegroups").status_code == 200
    refused = arm_get(emulator, "/resourcegroups")
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "2"
    emulator.advance_rate_limits(1)
    still = arm_get(emulator, "/resourcegroups")
    assert still.status_code == 429 and still.headers["Retry-After"] == "1"
    emulator.advance_rate_limits(1)
    assert arm_get(emulator, "/resourcegroups").status_code == 200
    bad = emulator.control.post(f"{emulator.control_endpoint}/ratelimits/advance", json={"seconds": -1})
    assert bad.status_code == 400


def test_scale_shrinks_every_bucket_and_a_bad_configuration_is_refused(emulator):
    state = emulator.set_rate_limits(scale=0.01)
    assert arm_get(emulator, "/resourcegroups").headers[f"{RATE_HEADER}subscription-reads"] == "1"  # 250 -> 2
    assert state["config"]["scale"] == 0.01
    for body in ({"clock": "sundial"}, {"limits": {"arm_nonsense": {}}}, {"scale": 0}, {"bogus": 1}):
        response = emulator.control.put(f"{emulator.control_endpoint}/ratelimits", json=body)
        assert response.status_code == 400, body


def test_the_command_line_turns_on_the_published_limits(tmp_path):
    with EmulatorProcess("--fast", "--rate-limits", "on", state_dir=tmp_path) as info:
        token = httpx.get(
            info.identity_endpoint,
            params={"api-version": "2019-08-01", "resource": "https://management.azure.com"},
            headers={"X-IDENTITY-HEADER": info.identity_header},
        ).json()["access_token"]
        response = httpx.get(
            f"{info.arm_endpoint}/subscriptions/{info.subscription_id}/resourcegroups",
            params={"api-version": "2025-04-01"},
            headers={"Authorization": f"Bearer {token}"},
            verify=info.ca_bundle,
        )
        # What a real first read of a subscription shows: 250-token principal bucket, 3,750 global.
        assert response.headers[f"{RATE_HEADER}subscription-reads"] == "249"
        assert response.headers[f"{RATE_HEADER}subscription-global-reads"] == "3749"


# --------------------------------------------------------------------------------------------------
# Microsoft Graph


async def test_graph_writes_beyond_the_app_tenant_bucket_are_throttled_and_kiota_retries(emulator):
    exo = emulator.exchange_service_principal_id
    principals = [emulator.seed_principal(f"mi{i}", visible=True)["id"] for i in range(4)]
    emulator.set_rate_limits(limits={"graph_writes": {"size": 2, "refill_per_second": 1}})

    def post(principal_id: str):
        return emulator.graph_http(
            "POST",
            f"/servicePrincipals/{principal_id}/appRoleAssignments",
            json=grant_body(principal_id, exo),
        )

    first, second = post(principals[0]), post(principals[1])
    assert (first.status_code, second.status_code) == (201, 201)
    assert (
        first.headers["x-ms-resource-unit"] == "1" and "x-ms-throttle-limit-percentage" not in first.headers
    )
    assert second.headers["x-ms-throttle-limit-percentage"] == "1.0"  # the write bucket is empty now

    # msgraph-sdk's third write is throttled, waits out Retry-After and gets through.
    position = emulator.log_position()
    graph = emulator.graph()
    created = await graph.service_principals.by_service_principal_id(principals[2]).app_role_assignments.post(
        grant(principals[2], exo)
    )
    assert str(created.principal_id) == principals[2]
    assert [e["status"] for e in emulator.log(position, service="graph")] == [429, 201]

    # What the throttled answer looks like.
    fourth = post(principals[3])
    assert fourth.status_code == 429 and fourth.headers["Retry-After"] == "1"
    assert fourth.headers["x-ms-throttle-scope"] == (
        f"Tenant_Application/Write/{emulator.admin_client_id}/{emulator.tenant_id}"
    )
    assert fourth.headers["x-ms-throttle-information"] == "WriteLimitExceeded"
    assert fourth.json()["error"]["code"] == "TooManyRequests"
    # Reads draw from the resource-unit bucket, not the write one.
    assert emulator.graph_http("GET", f"/servicePrincipals/{exo}").status_code == 200


def test_graph_requests_cost_the_published_resource_units(emulator):
    exo = emulator.exchange_service_principal_id
    emulator.set_rate_limits(limits={"graph_resource_units": {"size": 4, "refill_per_second": 1}})
    listed = emulator.graph_http("GET", f"/servicePrincipals/{exo}/appRoleAssignedTo")
    assert listed.headers["x-ms-resource-unit"] == "1"
    held = emulator.graph_http("GET", f"/servicePrincipals/{exo}/appRoleAssignments")
    assert held.headers["x-ms-resource-unit"] == "2"  # the table's cost for this path
    assert "x-ms-throttle-limit-percentage" not in held.headers  # 3 of 4 used: under 0.8
    selected = emulator.graph_http(
        "GET", f"/servicePrincipals/{exo}/appRoleAssignments", params={"$select": "id"}
    )
    assert selected.headers["x-ms-resource-unit"] == "1"  # $select takes one off
    assert selected.headers["x-ms-throttle-limit-percentage"] == "1.0"
    refused = emulator.graph_http("GET", f"/servicePrincipals/{exo}")
    assert refused.status_code == 429
    assert refused.headers["x-ms-throttle-scope"].startswith("Tenant_Application/ReadWrite/")
    assert refused.headers["x-ms-throttle-information"] == "ResourceUnitLimitExceeded"


# --------------------------------------------------------------------------------------------------
# Azure Automation


def test_module_imports_beyond_the_accounts_bucket_wait_for_a_token(emulator):
    create_account(emulator)
    client = emulator.automation()
    emulator.set_rate_limits(limits={"automation_module_imports": {"size": 2, "refill_per_second": 1}})
    responses = Responses()
    for name, version in (
        ("PackageManagement", "1.4.8.1"),
        ("PowerShellGet", "2.2.5"),
        ("Az.Accounts", "3.0.0"),
    ):
        client.module.create_or_update(
            RG, ACCOUNT, name, gallery_link(name, version), raw_response_hook=responses
        )
    assert responses.statuses == [201, 201, 429, 201]
    throttled = responses.seen[2]
    assert throttled.headers["Retry-After"] == "1"
    assert throttled.json()["error"]["code"] == "TooManyRequests"
    assert client.module.get(RG, ACCOUNT, "Az.Accounts").name == "Az.Accounts"


def _no_retry_client(emulator) -> AutomationClient:
    return AutomationClient(
        emulator.admin_credential(), emulator.subscription_id, retry_total=0, **emulator._arm_kwargs()
    )


def test_a_job_beyond_the_concurrent_limit_is_refused_until_one_ends(emulator):
    create_account(emulator)
    emulator.set_timings(retry_after=0)
    client = _no_retry_client(emulator)
    publish_runbook(client, "Verify", "Write-Output 'hi'")
    emulator.set_timings(job_start=30.0)  # the first job stays unfinished
    emulator.set_rate_limits(automation_concurrent_jobs=1)
    running = start_job(client, "Verify")
    with pytest.raises(HttpResponseError) as refused:
        start_job(client, "Verify")
    assert refused.value.status_code == 429 and refused.value.error.code == "TooManyRequests"
    assert int(refused.value.response.headers["Retry-After"]) >= 1
    assert emulator.rate_limits()["throttled"] == {"automation_concurrent_jobs": 1, "total": 1}
    client.job.stop(RG, ACCOUNT, running)
    assert client.job.get(RG, ACCOUNT, start_job(client, "Verify")).status in ("New", "Activating")


def test_job_submissions_are_limited_per_account(emulator):
    create_account(emulator)
    emulator.set_timings(retry_after=0)
    client = _no_retry_client(emulator)
    publish_runbook(client, "Verify", "Write-Output 'hi'")
    emulator.set_rate_limits(limits={"automation_job_submissions": {"size": 1}})
    start_job(client, "Verify")
    with pytest.raises(HttpResponseError) as refused:
        client.job.create(
            RG, ACCOUNT, str(uuid.uuid4()), {"properties": {"runbook": {"name": "Verify"}, "runOn": ""}}
        )
    assert refused.value.status_code == 429
    assert "You have reached the limit of allowed JobsByName API calls" in refused.value.error.message


# --------------------------------------------------------------------------------------------------
# The clocks themselves (RateLimiter in-process, real time replaced by a counter the test moves)


class FakeWall:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _limiter(monkeypatch, clock: str) -> tuple[RateLimiter, FakeWall]:
    wall = FakeWall()
    monkeypatch.setattr("emulator.ratelimits.time.monotonic", wall)
    config = RateLimitConfig.from_dict(
        {"clock": clock, "limits": {"arm_writes": {"size": 2, "refill_per_second": 1}}}
    )
    return RateLimiter(config), wall


def test_on_the_manual_clock_a_slow_machine_refills_nothing_but_a_waited_retry_gets_through(monkeypatch):
    limiter, wall = _limiter(monkeypatch, "manual")
    write = [Charge("arm_writes", "sub/admin")]
    assert limiter.take(write).allowed
    wall.now += 60  # a very slow machine between two calls of a burst
    assert limiter.take(write).remaining == {"arm_writes": 0}
    wall.now += 60
    refused = limiter.take(write)
    assert not refused.allowed and refused.retry_after == 1
    wall.now += 0.5  # retried too early: refused again
    assert not limiter.take(write).allowed
    wall.now += 1  # waited out the (new) Retry-After: one second's worth of tokens, no more
    retried = limiter.take(write)
    assert retried.allowed and retried.remaining == {"arm_writes": 0}


def test_on_the_wall_clock_buckets_refill_with_real_time(monkeypatch):
    limiter, wall = _limiter(monkeypatch, "wall")
    write = [Charge("arm_writes", "sub/admin")]
    assert limiter.take(write).allowed and limiter.take(write).allowed
    refused = limiter.take(write)
    assert not refused.allowed and refused.retry_after == 1
    wall.now += 1.5
    assert limiter.take(write).remaining == {"arm_writes": 0}  # 1.5 tokens back, one taken
    wall.now += 100
    assert limiter.take(write).remaining == {"arm_writes": 1}  # never more than the bucket holds
