"""`exomi provision` on a Function app: the grants only, then "granted, not verified" with the lines the
app uses (requirements.psd1 from the functions-7.4 defaults, the connect line, the Flex Consumption note)."""

from __future__ import annotations

import pytest

from tests.engine.test_provision import assert_succeeded, exchange_grants, grants_of
from tests.support.exomi import ExomiRunner, policy_for

STEPS = ["identity", "principal", "exchange-sp", "app-role", "entra-role", "function-app"]


def _provision(emulator, site, uai=None) -> list[str]:
    args = ["provision", "--target", site.id, "--organization", emulator.organization]
    return args + (["--identity", uai.id] if uai else [])


@pytest.mark.parametrize("identity", ["system", "user-assigned"])
async def test_function_app_gets_its_grants_and_the_lines_to_use(emulator, exomi, targets, identity):
    uai = targets.user_assigned_identity() if identity == "user-assigned" else None
    site = targets.function_app(
        system=uai is None, user_assigned=[uai.id] if uai else [], linux=uai is not None
    )
    position = emulator.log_position()

    code, output, stderr = exomi.run(*_provision(emulator, site, uai))

    assert_succeeded(code, output, stderr)
    assert [s["name"] for s in output["steps"]] == STEPS
    principal_id = uai.principal_id if uai else site.identity.principal_id
    app_roles, roles = await grants_of(emulator, principal_id)
    assert len(exchange_grants(app_roles, emulator.exchange_service_principal_id)) == 1 and len(roles) == 1
    writes = emulator.writes_since(position)
    assert len(writes) == 2 and all(w["service"] == "graph" for w in writes)  # the 2 grants, nothing else
    last = output["steps"][-1]
    assert last["status"] == "done" and last["message"].startswith("granted, not verified")

    connect = f"Connect-ExchangeOnline -ManagedIdentity -Organization {emulator.organization}"
    if uai:
        connect += f" -ManagedIdentityAccountId {uai.client_id}"
    for setup in (output["function_app"], exomi.run("status", output["id"])[1]["function_app"]):
        assert setup["outcome"] == "granted, not verified"
        assert setup["requirements_psd1"] == "@{ 'ExchangeOnlineManagement' = '3.5.0' }"
        assert setup["connect_command"] == connect
        assert "Modules folder" in setup["flex_consumption"]
    text = exomi.run_text("status", output["id"])
    assert "requirements.psd1: @{ 'ExchangeOnlineManagement' = '3.5.0' }" in text and connect in text

    position = emulator.log_position()
    code, output, stderr = exomi.run(*_provision(emulator, site, uai))
    assert_succeeded(code, output, stderr)
    assert emulator.writes_since(position) == []

    code, output, _ = exomi.run("revoke", "--target", site.id)
    assert code == 0 and output["status"] == "revoked"
    assert emulator.exchange_access(principal_id) == (0, [])


async def test_a_module_version_that_fails_in_functions_is_refused_before_any_write(
    emulator, azurite, targets
):
    exomi = ExomiRunner(emulator, azurite, policy=policy_for(emulator, allow_unpinned_module_versions=True))
    site = targets.function_app()
    position = emulator.log_position()

    code, output, _ = exomi.run(
        *_provision(emulator, site), "--module-version", "ExchangeOnlineManagement=3.5.1"
    )

    assert code == 2 and output["error"]["rule"] == "compatibility", output
    assert "3.5.1" in str(output) and "functions-7.4" in str(output)
    assert emulator.writes_since(position) == []


async def test_a_web_app_is_not_a_function_app(emulator, exomi, targets):
    body = {"location": "westeurope", "kind": "app", "identity": {"type": "SystemAssigned"}}
    site = emulator.web().web_apps.begin_create_or_update("ContosoRG", "contoso-web1", body).result()
    position = emulator.log_position()
    code, output, _ = exomi.run(*_provision(emulator, site))
    assert code != 0 and output["status"] == "failed", output
    assert "is not a Function app" in str(output)
    assert emulator.writes_since(position) == []


async def test_plan_then_diagnose_a_function_app(emulator, exomi, targets):
    site = targets.function_app()
    position = emulator.log_position()
    code, output, stderr = exomi.run("plan", "--target", site.id, "--organization", emulator.organization)
    assert code == 0, (output, stderr)
    assert sorted(s["name"] for s in output["steps"]) == sorted(STEPS)  # in dependency order
    # The lines come once the grants are in place: before, the step waits for them.
    assert output["steps"][-1]["name"] == "function-app" and output["steps"][-1]["verdict"] == "unknown"
    assert {s["name"]: s["verdict"] for s in output["steps"]}["app-role"] == "missing"
    assert emulator.writes_since(position) == []

    assert_succeeded(*exomi.run(*_provision(emulator, site)))
    code, output, stderr = exomi.run("diagnose", "--target", site.id)
    assert code == 0 and all(s["verdict"] in ("ok", "n/a") for s in output["steps"]), (output, stderr)
    assert "@{ 'ExchangeOnlineManagement' = '3.5.0' }" in output["steps"][-1]["detail"]
