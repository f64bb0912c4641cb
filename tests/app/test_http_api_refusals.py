"""Refused calls to the HTTP API: each kind of bad input gets its status and the one error shape, and
nothing is written, neither to the tenant nor to state. Idempotency-Key replays and reuse, and the
409 for a target that already has an active request."""

from __future__ import annotations

import json

import httpx

from shared.api.documents import ErrorDocument
from tests.engine.conftest import RG

OTHER_SUB = "00000000-0000-0000-0000-000000000000"


def account_id(emulator, name: str = "ContosoAzAuto1", subscription: str | None = None) -> str:
    # Refusals happen before exomi looks at Azure, so the resource need not exist.
    subscription = subscription or emulator.subscription_ids[0]
    return f"/subscriptions/{subscription}/resourceGroups/{RG}/providers/Microsoft.Automation/automationAccounts/{name}"


def error_of(response: httpx.Response, status: int, code: str, field: str | None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = ErrorDocument.model_validate(response.json()).error
    assert (error.code, error.field) == (code, field), response.json()
    assert error.message
    return response.json()["error"]


def test_each_kind_of_bad_input_is_refused_with_its_status_and_writes_nothing(emulator, start_api):
    api = start_api(policy={"callback_hosts": ["*.logic.azure.com"]})
    good = {"target": account_id(emulator), "organization": emulator.organization}
    position = emulator.log_position()

    def post(path: str = "requests", body=None, *, raw: bytes | None = None, headers=None) -> httpx.Response:
        content = raw if raw is not None else json.dumps(body).encode()
        return api.http.post(
            f"/api/{path}", content=content, headers={"content-type": "application/json", **(headers or {})}
        )

    # 400: not JSON at all, or nested far deeper than any request.
    error_of(post(raw=b'{"target": '), 400, "MalformedJson", None)
    error_of(post(raw=b'{"a":' * 1000 + b"1" + b"}" * 1000), 400, "MalformedJson", None)
    error_of(post(raw=b"[" * 40 + b"]" * 40), 400, "MalformedJson", None)
    error_of(post("plan", raw=b"\xff\xfe"), 400, "MalformedJson", None)
    # 415: not sent as JSON.
    error_of(
        api.http.post("/api/requests", content=json.dumps(good), headers={"content-type": "text/plain"}),
        415,
        "UnsupportedMediaType",
        None,
    )
    for path in ("requests", "plan", "diagnose", "revocations"):
        error_of(api.http.post(f"/api/{path}", content=b"target=x"), 415, "UnsupportedMediaType", None)
    # 413: over 64 KiB.
    error_of(post(body={**good, "external_reference": "x" * 70_000}), 413, "PayloadTooLarge", None)
    # 422: valid JSON, invalid request; the field is named.
    for body, field in [
        ({"target": good["target"]}, "organization"),
        ({**good, "colour": "blue"}, "colour"),
        ({**good, "target": "/subscriptions/x/resourceGroups/rg' or 1 eq 1"}, "target"),
        ({**good, "role": "Exchange Administrator' or 1 eq 1"}, "role"),
        (
            {**good, "module_versions": {"ExchangeOnlineManagement": "latest"}},
            "module_versions.ExchangeOnlineManagement",
        ),
        ({**good, "callback_url": "http://prod-1.westeurope.logic.azure.com/cb"}, "callback_url"),
        ({**good, "channel": "tag"}, "channel"),
        ({**good, "requested_by": "the boss"}, "requested_by"),
        ([good], "body"),
    ]:
        error = error_of(post(body=body), 422, "InvalidInput", field)
        assert error["problems"][0]["field"] == field
    error_of(post("revocations", body={"identity": "system"}), 422, "InvalidInput", "target")
    error_of(post(body=good, headers={"Idempotency-Key": "k" * 300}), 422, "InvalidInput", "Idempotency-Key")
    error_of(
        post(body=good, headers={"X-Exomi-On-Behalf-Of": "a" * 101}),
        422,
        "InvalidInput",
        "X-Exomi-On-Behalf-Of",
    )
    # 403: valid, refused by policy; the rule and the field are named.
    for body, rule, field in [
        ({**good, "role": "Global Administrator"}, "allow_global_administrator", "role"),
        ({**good, "organization": "fabrikam.onmicrosoft.com"}, "allowed_organizations", "organization"),
        ({**good, "target": account_id(emulator, subscription=OTHER_SUB)}, "allowed_scopes", "target"),
        ({**good, "callback_url": "https://evil.example.com/cb?sig=x"}, "callback_hosts", "callback_url"),
        # An allowed host, another port than 443: the policy names no port for it.
        (
            {**good, "callback_url": "https://prod-1.westeurope.logic.azure.com:8443/cb"},
            "callback_hosts",
            "callback_url",
        ),
    ]:
        error = error_of(post(body=body), 403, "PolicyRefused", field)
        assert error["rule"] == rule and "To fix" in error["message"]
    # 404: no such request (in the error shape), or no such route (the host's empty 404).
    error_of(api.get("requests/0190a9f0-0000-7000-8000-000000000000"), 404, "NotFound", None)
    error_of(api.get("requests/not-a-request-id"), 404, "NotFound", None)
    for method, path in [("DELETE", "/api/requests"), ("PUT", "/api/plan"), ("GET", "/api/nothing-here")]:
        response = api.http.request(method, path)
        assert response.status_code == 404 and response.content == b""

    assert [e for e in emulator.log(position) if e["service"] in ("arm", "graph")] == []
    api.no_state()
    # The policy refusals (not the invalid input) are in the refusal log, with who asked and the rule.
    assert [(r["rule"], r["requested_by"], r["channel"]) for r in api.refusals()] == [
        ("allow_global_administrator", "function-key caller", "http"),
        ("allowed_organizations", "function-key caller", "http"),
        ("allowed_scopes", "function-key caller", "http"),
        ("callback_hosts", "function-key caller", "http"),
        ("callback_hosts", "function-key caller", "http"),
    ]


def test_an_idempotency_key_replays_the_same_request_and_refuses_another(emulator, start_api):
    api = start_api(worker=False)
    body = {
        "target": account_id(emulator),
        "organization": emulator.organization,
        "external_reference": "INC7",
    }
    key = {"Idempotency-Key": "ticket-INC7-attempt"}

    first = api.post("requests", body, headers=key)
    assert first.status_code == 202 and "Idempotent-Replayed" not in first.headers
    again = api.post("requests", body, headers=key)
    assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Location"] == first.headers["Location"]

    other = api.post("requests", {**body, "external_reference": "INC8"}, headers=key)
    error = error_of(other, 409, "IdempotencyKeyReused", "Idempotency-Key")
    assert error["original_request_id"] == first.json()["id"]
    assert error["original_request_url"] == first.headers["Location"]

    listed = api.get("requests").json()["value"]
    assert [r["id"] for r in listed] == [first.json()["id"]]
    assert api.rows()["idempotency"] == 1


def test_a_target_with_an_active_request_refuses_a_second_one(emulator, start_api):
    api = start_api(worker=False)  # the first request stays queued, so it holds its target
    target = account_id(emulator)
    first = api.post("requests", {"target": target, "organization": emulator.organization})
    assert first.status_code == 202
    for path, body in [
        ("requests", {"target": target, "organization": emulator.organization, "role": "Global Reader"}),
        ("revocations", {"target": target}),
    ]:
        error = error_of(api.post(path, body), 409, "Conflict", "target")
        assert error["active_request_id"] == first.json()["id"]
        assert error["active_request_url"] == first.headers["Location"]
    assert len(api.get("requests").json()["value"]) == 1


def test_module_versions_that_cannot_work_on_the_runtime_are_refused_with_what_would(emulator, start_api):
    # Even where the policy lets requests choose versions, ExchangeOnlineManagement 3.5.1 cannot connect on
    # PowerShell 7.2 (built for .NET 8, shared/compatibility.json): refused before anything is written.
    api = start_api(policy={"allow_unpinned_module_versions": True})
    position = emulator.log_position()
    body = {
        "target": account_id(emulator),
        "organization": emulator.organization,
        "runtime": "7.2",
        "module_versions": {"ExchangeOnlineManagement": "3.5.1"},
    }
    error = error_of(
        api.post("requests", body), 403, "PolicyRefused", "module_versions.ExchangeOnlineManagement"
    )
    assert error["rule"] == "compatibility"
    assert "ExchangeOnlineManagement 3.5.1 does not work on PowerShell 7.2" in error["message"]
    assert "ExchangeOnlineManagement 3.0.0 or later, before 3.5.0 (default 3.4.0)" in error["message"]
    assert [e for e in emulator.log(position) if e["service"] in ("arm", "graph")] == []
    api.no_state()
    assert [(r["rule"], r["channel"]) for r in api.refusals()] == [("compatibility", "http")]
    # The version that works there is accepted.
    accepted = api.post("requests", {**body, "module_versions": {"ExchangeOnlineManagement": "3.4.0"}})
    assert accepted.status_code == 202, accepted.text
