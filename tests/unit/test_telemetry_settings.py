"""The Application Insights settings (shared/telemetry.py reads them): none without a connection string,
Entra authentication from APPLICATIONINSIGHTS_AUTHENTICATION_STRING, and a clear error naming it when it
is not one of the two documented forms."""

from __future__ import annotations

import pytest

from shared.errors import ConfigurationError
from shared.settings import Settings

CONNECTION = "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://example.net/"
CLIENT_ID = "0f1e2d3c-4b5a-4968-8776-655443322110"


def load(env: dict[str, str], tmp_path) -> Settings:
    return Settings.load(env, local_settings=tmp_path / "none.json")


def test_without_a_connection_string_there_is_no_telemetry(tmp_path):
    assert load({}, tmp_path).app_insights is None
    assert (
        load({"APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=AAD"}, tmp_path).app_insights
        is None
    )


def test_the_connection_string_is_kept_secret(tmp_path):
    insights = load({"APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION}, tmp_path).app_insights
    assert insights is not None and not insights.entra and insights.client_id is None
    assert insights.connection_string.get_secret_value() == CONNECTION
    assert "InstrumentationKey" not in repr(insights)


@pytest.mark.parametrize(
    ("authentication", "client_id"),
    [
        ("Authorization=AAD", None),
        (f"ClientId={CLIENT_ID};Authorization=AAD", CLIENT_ID),
        (f"Authorization=aad; ClientId={CLIENT_ID.upper()}", CLIENT_ID),
    ],
)
def test_entra_authentication_with_the_system_or_a_user_assigned_identity(
    tmp_path, authentication, client_id
):
    insights = load(
        {
            "APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION,
            "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": authentication,
        },
        tmp_path,
    ).app_insights
    assert insights is not None and insights.entra
    assert insights.client_id == client_id


@pytest.mark.parametrize(
    "authentication", ["ClientId=" + CLIENT_ID, "Authorization=Key", "Authorization=AAD;Secret=x"]
)
def test_another_authentication_string_is_refused_naming_the_setting(tmp_path, authentication):
    with pytest.raises(ConfigurationError) as raised:
        load(
            {
                "APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION,
                "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": authentication,
            },
            tmp_path,
        )
    assert "APPLICATIONINSIGHTS_AUTHENTICATION_STRING" in str(raised.value)


@pytest.mark.parametrize("connection", ["not a connection string", "IngestionEndpoint=https://example.net/"])
def test_a_connection_string_without_an_instrumentation_key_is_refused_naming_the_setting(
    tmp_path, connection
):
    with pytest.raises(ConfigurationError) as raised:
        load({"APPLICATIONINSIGHTS_CONNECTION_STRING": connection}, tmp_path)
    assert "APPLICATIONINSIGHTS_CONNECTION_STRING" in str(raised.value)


def test_a_client_id_that_is_not_a_guid_is_refused(tmp_path):
    with pytest.raises(ConfigurationError) as raised:
        load(
            {
                "APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION,
                "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=AAD;ClientId=not-a-guid",
            },
            tmp_path,
        )
    assert "APPLICATIONINSIGHTS_AUTHENTICATION_STRING" in str(raised.value)


def test_when_the_functions_worker_exports_itself_exomi_configures_nothing(tmp_path):
    """PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true: the Python worker runs the distro itself."""
    env = {
        "APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION,
        "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "true",
    }
    assert load(env, tmp_path).app_insights is None
