"""Who may call the HTTP API: a function key always (the host's 401 without one); with App Service
Authentication trusted, the caller's principal is recorded and matched by the policy's rules;
without it, the principal headers are ignored (anyone could send them) and a caller is only the
"function-key caller", which a rule must name literally."""

from __future__ import annotations

import base64
import json

import httpx

from shared.api.documents import ErrorDocument
from tests.engine.conftest import RG

LOGIC_APP_OID = "6f1d3e2a-9b8c-4d7e-a6f5-0e1d2c3b4a59"
SECRET_GROUP = "b8f0c0de-5ec2-4e7a-9a1d-00000000beef"


def account_id(emulator, name: str) -> str:
    sub = emulator.subscription_ids[0]
    return (
        f"/subscriptions/{sub}/resourceGroups/{RG}/providers/Microsoft.Automation/automationAccounts/{name}"
    )


def client_principal(name: str, object_id: str) -> str:
    """X-MS-CLIENT-PRINCIPAL as App Service Authentication sends it: base64 JSON with the claims."""
    name_type = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
    document = {
        "auth_typ": "aad",
        "name_typ": name_type,
        "role_typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
        "claims": [
            {"typ": name_type, "val": name},
            {"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": object_id},
            {"typ": "groups", "val": SECRET_GROUP},
        ],
    }
    return base64.b64encode(json.dumps(document).encode()).decode()


def everything_stored(api) -> str:
    """Every state entity and the host's log, as one text."""
    from azure.data.tables import TableServiceClient

    service = TableServiceClient.from_connection_string(api.storage)
    entities = [
        dict(entity)
        for table in service.list_tables()
        if table.name.startswith(api.exomi.table_prefix)
        for entity in service.get_table_client(table.name).list_entities()
    ]
    return json.dumps(entities, default=str) + api.host.log_file.read_text(errors="replace")


def test_a_function_key_is_required_except_for_health_and_the_openapi_document(start_api):
    api = start_api(worker=False)
    anonymous = httpx.Client(base_url=api.url, timeout=30)
    protected = [
        ("POST", "/api/requests"),
        ("GET", "/api/requests"),
        ("GET", "/api/requests/0190a9f0-0000-7000-8000-000000000000"),
        ("POST", "/api/plan"),
        ("POST", "/api/diagnose"),
        ("POST", "/api/revocations"),
    ]
    for method, path in protected:
        for headers in ({}, {"x-functions-key": "not-the-key"}):
            response = anonymous.request(method, path, headers=headers)
            assert response.status_code == 401 and response.content == b"", (method, path)
    assert anonymous.get("/api/requests", headers={"x-functions-key": api.key}).status_code == 200
    assert anonymous.get("/api/requests", params={"code": api.key}).status_code == 200
    assert anonymous.get("/api/health").status_code == 200
    assert anonymous.get("/api/openapi.json").status_code == 200


def test_principal_headers_are_ignored_unless_app_service_authentication_is_trusted(emulator, start_api):
    api = start_api(worker=False)
    forged = {
        "X-MS-CLIENT-PRINCIPAL-ID": LOGIC_APP_OID,
        "X-MS-CLIENT-PRINCIPAL-NAME": "ceo@contoso.com",
        "X-MS-CLIENT-PRINCIPAL": client_principal("ceo@contoso.com", LOGIC_APP_OID),
    }
    plain = api.post(
        "requests",
        {"target": account_id(emulator, "ContosoAuto1"), "organization": emulator.organization},
        headers=forged,
    )
    assert plain.status_code == 202 and plain.json()["requested_by"] == "function-key caller"

    # A name the caller asserts is recorded, marked as asserted, on the request and its audit.
    asserted = api.post(
        "requests",
        {"target": account_id(emulator, "ContosoAuto2"), "organization": emulator.organization},
        headers={"X-Exomi-On-Behalf-Of": "alice@contoso.com", "Idempotency-Key": "ticket-1"},
    )
    assert asserted.json()["requested_by"] == "function-key caller (asserted: alice@contoso.com)"
    audit = api.get(f"requests/{asserted.json()['id']}", params={"include": "audit"}).json()["audit"]
    assert [a["requested_by"] for a in audit] == ["function-key caller (asserted: alice@contoso.com)"]
    # The key belongs to the authenticated caller: asserting another name does not make it a new key.
    other = api.post(
        "requests",
        {"target": account_id(emulator, "ContosoAuto2"), "organization": emulator.organization},
        headers={"X-Exomi-On-Behalf-Of": "mallory@contoso.com", "Idempotency-Key": "ticket-1"},
    )
    assert other.status_code == 409 and other.json()["error"]["code"] == "IdempotencyKeyReused"


PEOPLE = [{"name": "people", "channels": ["http"], "principals": ["*@contoso.com"]}]


def test_without_trusted_authentication_rules_naming_people_refuse_everyone(emulator, start_api):
    api = start_api(worker=False, policy={"rules": PEOPLE})
    for response in (
        api.post(
            "requests",
            {"target": account_id(emulator, "ContosoAuto1"), "organization": emulator.organization},
            headers={"X-MS-CLIENT-PRINCIPAL-NAME": "alice@contoso.com"},
        ),
        api.get("requests"),
    ):
        assert response.status_code == 403
        error = ErrorDocument.model_validate(response.json()).error
        assert error.code == "PolicyRefused" and response.json()["error"]["rule"] == "rules"
    api.no_state()
    refusals = api.refusals()
    assert [(r["requested_by"], r["operation"], r["rule"]) for r in refusals] == [
        ("function-key caller", "use the API", "rules")
    ] * 2


def test_trusted_app_service_authentication_records_and_checks_the_caller(emulator, start_api):
    api = start_api(
        worker=False,
        env={"EXOMI_TRUST_APP_SERVICE_AUTH": "true"},
        policy={
            "rules": [
                {"name": "callers", "channels": ["http"], "principals": [LOGIC_APP_OID, "*@contoso.com"]}
            ]
        },
    )

    def create(name: str, headers: dict[str, str]) -> httpx.Response:
        body = {"target": account_id(emulator, name), "organization": emulator.organization}
        return api.post("requests", body, headers=headers)

    # Allowed by object id; the principal's name is what gets recorded.
    logic_app = create(
        "ContosoAuto1",
        {
            "X-MS-CLIENT-PRINCIPAL-ID": LOGIC_APP_OID,
            "X-MS-CLIENT-PRINCIPAL-NAME": "logic-exo-provisioning",
            "X-MS-CLIENT-PRINCIPAL-IDP": "aad",
        },
    )
    assert logic_app.status_code == 202 and logic_app.json()["requested_by"] == "logic-exo-provisioning"

    # Allowed by name pattern, read from the claims when only X-MS-CLIENT-PRINCIPAL is there.
    blob = client_principal("alice@contoso.com", "11111111-2222-4333-8444-555555555555")
    alice = create("ContosoAuto2", {"X-MS-CLIENT-PRINCIPAL": blob})
    assert alice.status_code == 202 and alice.json()["requested_by"] == "alice@contoso.com"
    read = api.get(
        f"requests/{alice.json()['id']}", params={"include": "audit"}, headers={"X-MS-CLIENT-PRINCIPAL": blob}
    )
    assert {a["requested_by"] for a in read.json()["audit"]} == {"alice@contoso.com"}
    assert api.get(f"requests/{alice.json()['id']}").status_code == 401  # reads need a caller too

    # Not on the list: 403 naming the rule. Not identified at all: 401. Neither writes anything.
    mallory = create(
        "ContosoAuto3",
        {
            "X-MS-CLIENT-PRINCIPAL-ID": "99999999-2222-4333-8444-555555555555",
            "X-MS-CLIENT-PRINCIPAL-NAME": "mallory@fabrikam.com",
        },
    )
    assert mallory.status_code == 403 and mallory.json()["error"]["rule"] == "rules"
    nobody = create("ContosoAuto4", {})
    assert nobody.status_code == 401
    assert ErrorDocument.model_validate(nobody.json()).error.code == "NotAuthenticated"
    assert api.rows()["requests"] == 2

    # Claims never reach state or logs: only the name and object id were kept, and mallory's attempt is
    # in the refusal log.
    stored = everything_stored(api)
    assert blob not in stored and SECRET_GROUP not in stored
    assert [(r["requested_by"], r["principal_id"]) for r in api.refusals()] == [
        ("mallory@fabrikam.com", "99999999-2222-4333-8444-555555555555")
    ]
