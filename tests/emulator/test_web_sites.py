"""Function apps (Microsoft.Web/sites) through azure-mgmt-web: kind, identity and siteConfig."""

from __future__ import annotations

import pytest
from azure.core.exceptions import ResourceNotFoundError

RG = "ContosoRG3"


@pytest.fixture
def web(emulator):
    emulator.resources().resource_groups.create_or_update(RG, {"location": "westus"})
    return emulator.web()


def _principal(emulator, principal_id):
    return next((p for p in emulator.principals() if p["id"] == principal_id), None)


def _body(**extra):
    return {
        "location": "West US",
        "kind": "functionapp",
        "identity": {"type": "SystemAssigned"},
        "properties": {"siteConfig": {"powerShellVersion": "7.4"}},
        **extra,
    }


def test_a_function_app_with_a_system_assigned_identity_is_a_service_principal(emulator, web):
    site = web.web_apps.begin_create_or_update(RG, "contoso-func1", _body()).result()
    assert site.kind == "functionapp" and site.location == "westus"
    assert site.site_config.power_shell_version == "7.4"
    assert site.identity.type == "SystemAssigned" and site.identity.tenant_id == emulator.tenant_id
    principal = _principal(emulator, site.identity.principal_id)
    assert principal["type"] == "ManagedIdentity" and principal["miResourceId"] == site.id

    again = web.web_apps.get(RG.lower(), "CONTOSO-FUNC1")
    assert again.identity.principal_id == site.identity.principal_id and again.id == site.id


def test_user_assigned_identity_linux_kind_list_and_delete(emulator, web):
    uai = emulator.msi().user_assigned_identities.create_or_update(RG, "ContosoMI3", {"location": "westus"})
    body = _body(
        kind="functionapp,linux",
        identity={"type": "UserAssigned", "userAssignedIdentities": {uai.id: {}}},
        properties={"siteConfig": {"linuxFxVersion": "PowerShell|7.4"}},
    )
    site = web.web_apps.begin_create_or_update(RG, "contoso-func2", body).result()
    assert site.kind == "functionapp,linux" and site.reserved is True
    assert site.site_config.linux_fx_version == "PowerShell|7.4"
    (entry,) = site.identity.user_assigned_identities.values()
    assert entry.principal_id == uai.principal_id and entry.client_id == uai.client_id
    web.web_apps.begin_create_or_update(RG, "contoso-func3", _body()).result()
    assert sorted(s.name for s in web.web_apps.list_by_resource_group(RG)) == [
        "contoso-func2",
        "contoso-func3",
    ]

    system = web.web_apps.get(RG, "contoso-func3").identity.principal_id
    web.web_apps.delete(RG, "contoso-func3")
    with pytest.raises(ResourceNotFoundError):
        web.web_apps.get(RG, "contoso-func3")
    assert _principal(emulator, system) is None  # the system-assigned identity goes with the site
    web.web_apps.delete(RG, "contoso-func3")  # already gone: 204, no error


def test_put_again_keeps_the_principal_and_none_removes_it(emulator, web):
    first = web.web_apps.begin_create_or_update(RG, "contoso-func4", _body()).result()
    again = web.web_apps.begin_create_or_update(RG, "contoso-func4", _body(tags={"k": "v"})).result()
    assert again.identity.principal_id == first.identity.principal_id and again.tags == {"k": "v"}
    off = web.web_apps.begin_create_or_update(RG, "contoso-func4", _body(identity={"type": "None"})).result()
    assert off.identity is None or off.identity.principal_id is None
    assert _principal(emulator, first.identity.principal_id) is None
