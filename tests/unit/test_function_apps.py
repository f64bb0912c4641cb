"""The lines a Function app gets: requirements.psd1, the connect line (per cloud), Flex Consumption."""

from __future__ import annotations

from shared.function_apps import function_app_setup
from shared.settings import ExchangeEnvironment

CLIENT_ID = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"


def test_a_system_assigned_identity_in_the_commercial_cloud():
    setup = function_app_setup("contoso.onmicrosoft.com", None, ExchangeEnvironment.DEFAULT, "3.5.0")
    assert setup.outcome == "granted, not verified"
    assert setup.requirements_psd1 == "@{ 'ExchangeOnlineManagement' = '3.5.0' }"
    assert (
        setup.connect_command
        == "Connect-ExchangeOnline -ManagedIdentity -Organization contoso.onmicrosoft.com"
    )
    assert "-RequiredVersion 3.5.0 -Path ./Modules" in setup.flex_consumption


def test_a_user_assigned_identity_outside_the_commercial_cloud_names_its_client_id_and_environment():
    environment = next(e for e in ExchangeEnvironment if e is not ExchangeEnvironment.DEFAULT)
    setup = function_app_setup("contoso.onmicrosoft.us", CLIENT_ID, environment, "3.4.0")
    assert setup.connect_command.endswith(
        f"-ManagedIdentityAccountId {CLIENT_ID} -ExchangeEnvironmentName {environment.value}"
    )
    assert setup.requirements_psd1 == "@{ 'ExchangeOnlineManagement' = '3.4.0' }"
