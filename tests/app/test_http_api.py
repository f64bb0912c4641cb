"""The HTTP API's stories under the local Functions host (devhost), against the emulator and Azurite:
self-service, Logic Apps with a user-assigned identity, a failed request, listing, plan and diagnose.
Every answer is checked against the documents the OpenAPI document describes."""

from __future__ import annotations

import asyncio

import httpx

from shared.api.documents import PlanDocument, RequestDocument, RequestList
from tests.engine.conftest import RG
from tests.engine.test_provision import exchange_grants, grants_of


def exchange_access(emulator, principal_id: str) -> tuple[int, int]:
    """How many Exchange.ManageAsApp grants and Entra role assignments the principal has (via msgraph-sdk)."""
    app_roles, roles = asyncio.run(grants_of(emulator, principal_id))
    return len(exchange_grants(app_roles, emulator.exchange_service_principal_id)), len(roles)


def test_self_service_provisions_an_automation_account_through_the_async_pattern(
    emulator, targets, start_api
):
    api = start_api()
    account = targets.automation_account()
    accepted = api.post("requests", {"target": account.id, "organization": emulator.organization})

    assert accepted.status_code == 202, accepted.text
    request_id = accepted.json()["id"]
    assert accepted.headers["Location"] == f"{api.url}/api/requests/{request_id}"
    assert int(accepted.headers["Retry-After"]) >= 1
    assert accepted.json()["status"] == "queued" and accepted.json()["requested_by"] == "function-key caller"
    RequestDocument.model_validate(accepted.json())

    final, polls = api.follow(accepted)
    assert final.status_code == 200, final.text
    document = RequestDocument.model_validate(final.json())
    assert document.status == "succeeded" and document.channel == "http"
    assert [(s.name, s.status) for s in document.steps][-1] == ("verify", "done")
    assert {s.status for s in document.steps} == {"done"}
    assert document.result.verified_at is not None
    assert document.result.principal_id == account.identity.principal_id
    assert document.result.connect_command == (
        f"Connect-ExchangeOnline -ManagedIdentity -Organization {emulator.organization}"
    )
    assert all(p.status_code == 202 and "Retry-After" in p.headers for p in polls)
    # The tenant really has the grant the answer reports.
    assert exchange_access(emulator, account.identity.principal_id) == (1, 1)


def test_logic_apps_provisions_and_revokes_a_user_assigned_identity(emulator, targets, start_api):
    """A Logic Apps HTTP action: the function key in the URL (?code=), the asynchronous pattern, no
    other headers on the polls, and a ticket id that comes back in every answer."""
    api = start_api()
    uai = targets.user_assigned_identity()
    logic_app = httpx.Client(timeout=60)
    accepted = logic_app.post(
        f"{api.url}/api/requests",
        params={"code": api.key},
        json={
            "target": uai.id,
            "organization": emulator.organization,
            "channel": "logicapps",
            "external_reference": "RITM0012345",
        },
    )
    assert accepted.status_code == 202, accepted.text
    # Location carries the key the caller used, so that polling needs nothing else.
    assert accepted.headers["Location"].endswith(f"/api/requests/{accepted.json()['id']}?code={api.key}")

    final, polls = api.follow(accepted, client=logic_app)
    assert final.status_code == 200, final.text
    done = RequestDocument.model_validate(final.json())
    assert done.channel == "logicapps" and done.external_reference == "RITM0012345"
    assert all(p.json()["external_reference"] == "RITM0012345" for p in polls)
    # The user-assigned identity's two ids, each where it belongs.
    assert done.result.principal_id == uai.principal_id and done.result.client_id == uai.client_id
    assert done.result.connect_command.endswith(f"-ManagedIdentityAccountId {uai.client_id}")
    assert exchange_access(emulator, uai.principal_id) == (1, 1)

    listed = api.get("requests", params={"external_reference": "RITM0012345"}).json()
    assert [r["id"] for r in listed["value"]] == [done.id]

    revocation = logic_app.post(
        f"{api.url}/api/revocations",
        params={"code": api.key},
        json={"target": uai.id, "channel": "logicapps", "external_reference": "RITM0012345"},
    )
    assert revocation.status_code == 202, revocation.text
    revoked, _ = api.follow(revocation, client=logic_app)
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert revoked.json()["operation"] == "revoke" and revoked.json()["external_reference"] == "RITM0012345"
    assert exchange_access(emulator, uai.principal_id) == (0, 0)

    audit = api.get(f"requests/{revoked.json()['id']}", params={"include": "audit"}).json()["audit"]
    accepted_record = next(a for a in audit if a["step"] == "request")
    assert accepted_record["after"]["request"]["external_reference"] == "RITM0012345"
    assert len([a for a in audit if a["step"] != "request"]) >= 2  # the removals, each recorded


def test_a_failed_request_ends_with_a_final_422_carrying_the_reason(emulator, targets, start_api):
    api = start_api()
    account = targets.automation_account("NoIdentityAuto", system=False)  # nothing to grant to
    accepted = api.post(
        "requests",
        {"target": account.id, "organization": emulator.organization, "external_reference": "INC0042"},
    )
    final, _ = api.follow(accepted)
    # 422 is not retried by Logic Apps (it retries 408, 429 and 5xx): the action fails at once.
    assert final.status_code == 422, final.text
    document = RequestDocument.model_validate(final.json())
    assert document.status == "failed" and document.external_reference == "INC0042"
    assert document.error.code == "PrerequisiteMissing" and "identity" in document.error.message.lower()
    assert document.error.field is None
    assert "Location" not in final.headers and "Retry-After" not in final.headers
    assert [s.status for s in document.steps if s.status == "failed"] == ["failed"]
    assert document.result is None


def test_requests_are_listed_filtered_and_paged(emulator, start_api):
    api = start_api(worker=False)  # the requests stay queued
    sub = emulator.subscription_ids[0]
    made = []
    for index, (channel, reference) in enumerate(
        [("http", None), ("ticket", "INC1"), ("ticket", "INC2"), ("logicapps", None), ("http", "INC1")]
    ):
        body = {
            "target": f"/subscriptions/{sub}/resourceGroups/{RG}/providers/Microsoft.Automation/automationAccounts/ContosoAuto{index}",
            "organization": emulator.organization,
            "channel": channel,
        }
        if reference:
            body["external_reference"] = reference
        response = api.post("requests", body)
        assert response.status_code == 202, response.text
        made.append(response.json())
    revocation = api.post(
        "revocations", {"target": made[0]["target"].replace("ContosoAuto0", "ContosoAuto9")}
    )
    assert revocation.status_code == 202

    def ids(**query) -> list[str]:
        return [r["id"] for r in api.get("requests", params=query).json()["value"]]

    # Pages of two, oldest first, by following nextLink to the end.
    pages, link = [], f"{api.url}/api/requests?page_size=2&operation=provision"
    while link:
        page = RequestList.model_validate(api.http.get(link).json())
        pages.append([r.id for r in page.value])
        link = page.nextLink
    assert pages == [[made[0]["id"], made[1]["id"]], [made[2]["id"], made[3]["id"]], [made[4]["id"]]]

    assert ids(channel="ticket") == [made[1]["id"], made[2]["id"]]
    assert ids(external_reference="INC1") == [made[1]["id"], made[4]["id"]]
    assert ids(target=made[3]["target"].upper().replace("/SUBSCRIPTIONS/", "/subscriptions/")) == [
        made[3]["id"]
    ]
    assert ids(operation="revoke") == [revocation.json()["id"]]
    assert len(ids(status="queued,running")) == 6 and ids(status="succeeded") == []
    bad = api.get("requests", params={"status": "done"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "status"
    assert api.get("requests", params={"stauts": "queued"}).json()["error"]["field"] == "stauts"
    token = api.get("requests", params={"continuation_token": "bm90LWEtdG9rZW4"})
    assert token.status_code == 422 and token.json()["error"]["field"] == "continuation_token"


def test_plan_and_diagnose_answer_without_writing_anything(emulator, targets, start_api):
    api = start_api()
    emulator.set_timings(replication_delay=0)  # the new identity is visible at once
    account = targets.automation_account()
    position = emulator.log_position()

    plan = api.post("plan", {"target": account.id, "organization": emulator.organization})
    assert plan.status_code == 200, plan.text
    document = PlanDocument.model_validate(plan.json())
    assert document.allowed and document.decision.role == "Exchange Recipient Administrator"
    # The runbook does not wait for the modules: it is known to be missing too.
    assert document.changes == ["app-role", "entra-role", "modules", "runbook"]
    assert next(s for s in document.steps if s.name == "identity").verdict == "ok"

    # A policy refusal is part of the plan's answer, not an error.
    refused = api.post(
        "plan", {"target": account.id, "organization": emulator.organization, "role": "Global Administrator"}
    )
    assert refused.status_code == 200
    refusal = PlanDocument.model_validate(refused.json())
    assert not refusal.allowed and refusal.decision is None and refusal.steps == []
    assert refusal.refused.rule == "allow_global_administrator" and refusal.refused.field == "role"

    diagnosis = api.post("diagnose", {"target": account.id, "organization": emulator.organization})
    assert diagnosis.status_code == 200, diagnosis.text
    verdicts = {s.name: s.verdict for s in PlanDocument.model_validate(diagnosis.json()).steps}
    assert verdicts["app-role"] == "missing" and verdicts["identity"] == "ok"
    missing = api.post("diagnose", {"organization": emulator.organization})
    assert missing.status_code == 422 and missing.json()["error"]["field"] == "target"
    # Diagnose still looks when the policy refuses the desired state (a finding, not a 500).
    outside = api.post(
        "diagnose",
        {"target": account.id, "organization": "fabrikam.onmicrosoft.com", "role": "Global Reader"},
    )
    assert outside.status_code == 200, outside.text
    outside_document = PlanDocument.model_validate(outside.json())
    assert outside_document.refused.rule == "allowed_organizations"
    assert {s.name: s.verdict for s in outside_document.steps}["entra-role"] == "missing"

    assert emulator.writes_since(position) == []
    api.no_state()


def test_health_answers_without_a_key(start_api):
    api = start_api(worker=False)
    health = httpx.get(f"{api.url}/api/health")
    assert health.status_code == 200
    assert health.json() == {
        "status": "healthy",
        "checks": [
            {"name": "settings", "ok": True, "detail": None},
            {"name": "storage", "ok": True, "detail": None},
            {"name": "graph_permissions", "ok": True, "detail": None},
        ],
    }


def test_health_is_degraded_while_exomi_lacks_a_graph_permission(emulator, start_api):
    # What an admin's consent script that skipped one permission leaves behind.
    permission = {"principal_id": emulator.app_principal_id, "permission": "AppRoleAssignment.ReadWrite.All"}
    emulator.ctl("DELETE", "/graph-permissions", permission)
    api = start_api(worker=False)
    position = emulator.log_position()
    health = httpx.get(f"{api.url}/api/health")
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    check = {c["name"]: c for c in health.json()["checks"]}["graph_permissions"]
    assert check["ok"] is False and "AppRoleAssignment.ReadWrite.All" in check["detail"]
    # The answer is kept for a while: probes do not turn into Graph traffic.
    assert httpx.get(f"{api.url}/api/health").json()["status"] == "degraded"
    graph_reads = [e for e in emulator.log(position, service="graph") if "appRoleAssignments" in e["path"]]
    assert len(graph_reads) == 1


def test_health_is_503_when_storage_refuses_and_shows_no_secret(start_api, azurite):
    key = next(p.split("=", 1)[1] for p in azurite.split(";") if p.startswith("AccountKey="))
    wrong = azurite.replace(key, "d3Jvbmcta2V5LWZvci10aGUtZW11bGF0b3I=")
    api = start_api(worker=False, env={"AzureWebJobsStorage": wrong})
    health = httpx.get(f"{api.url}/api/health")
    assert health.status_code == 503
    assert health.json()["status"] == "unhealthy"
    assert {c["name"]: c["ok"] for c in health.json()["checks"]} == {"settings": True, "storage": False}
    assert "d3Jvbmcta2V5" not in health.text and key not in health.text and "AccountKey" not in health.text


def test_health_is_503_when_a_setting_is_unusable(start_api):
    api = start_api(worker=False, env={"EXOMI_POLICY": '{"allowed_scopes": ["not a scope"]}'})
    health = httpx.get(f"{api.url}/api/health")
    assert health.status_code == 503
    settings = health.json()["checks"][0]
    assert settings["ok"] is False and "EXOMI_POLICY" in settings["detail"]
    assert "not a scope" not in health.text  # the value stays in the log
    # The other routes answer in the error shape too.
    broken = api.get("requests")
    assert broken.status_code == 500 and broken.json()["error"]["code"] == "InvalidConfiguration"


def test_a_function_app_result_carries_the_lines_to_use(emulator, targets, start_api):
    """exomi cannot run code in a Function app: the result says "granted, not verified" and gives the
    requirements.psd1 line (the functions-7.4 default) and the connect line."""
    api = start_api()
    site = targets.function_app()
    accepted = api.post("requests", {"target": site.id, "organization": emulator.organization})
    assert accepted.status_code == 202, accepted.text

    final, _ = api.follow(accepted)
    assert final.status_code == 200, final.text
    document = RequestDocument.model_validate(final.json())
    assert document.status == "succeeded" and document.steps[-1].name == "function-app"
    setup = document.result.function_app
    assert setup is not None and setup.outcome == "granted, not verified"
    assert setup.requirements_psd1 == "@{ 'ExchangeOnlineManagement' = '3.5.0' }"
    assert setup.connect_command == document.result.connect_command
    assert document.result.verified_at is None
    assert exchange_access(emulator, site.identity.principal_id) == (1, 1)
