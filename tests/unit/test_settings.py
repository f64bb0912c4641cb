"""Settings: environment over local.settings.json, cloud defaults, overrides, and loud failures."""

from __future__ import annotations

import json

import pytest

from shared.errors import ConfigurationError
from shared.runbooks import connect_line, connect_script
from shared.settings import Cloud, ExchangeEnvironment, Settings
from shared.state.tables import open_table_service

CLIENT_ID = "0f1e2d3c-4b5a-4968-8776-655443322110"


def load(env: dict[str, str], tmp_path, local: dict | None = None) -> Settings:
    path = tmp_path / "local.settings.json"
    if local is not None:
        path.write_text(json.dumps({"IsEncrypted": False, "Values": local}))
    return Settings.load(env, local_settings=path)


def test_defaults_are_the_public_azure_cloud(tmp_path):
    settings = load({}, tmp_path)
    assert settings.cloud is Cloud.AZURE
    assert settings.exchange_environment is ExchangeEnvironment.DEFAULT
    assert settings.arm_endpoint == "https://management.azure.com"
    assert settings.arm_scope == "https://management.azure.com/.default"
    assert settings.graph_endpoint == "https://graph.microsoft.com/v1.0"
    assert settings.graph_scope == "https://graph.microsoft.com/.default"
    assert settings.table_prefix == "exomi" and settings.queue_name == "exomi-work"
    assert settings.ca_bundle is None and settings.client_id is None and settings.storage is None
    assert settings.policy_json is None and settings.policy_file is None


def test_us_government_cloud_defaults(tmp_path):
    settings = load(
        {"EXOMI_CLOUD": "AzureUSGovernment", "AzureWebJobsStorage__accountName": "exomistate"}, tmp_path
    )
    assert settings.arm_endpoint == "https://management.usgovcloudapi.net"
    assert settings.arm_scope == "https://management.core.usgovcloudapi.net/.default"
    assert settings.graph_endpoint == "https://graph.microsoft.us/v1.0"
    assert settings.graph_scope == "https://graph.microsoft.us/.default"
    assert settings.storage.table_service_uri == "https://exomistate.table.core.usgovcloudapi.net"


def test_us_government_is_gcc_high_unless_the_tenant_is_dod(tmp_path):
    gcc_high = load({"EXOMI_CLOUD": "AzureUSGovernment"}, tmp_path)
    assert gcc_high.exchange_environment is ExchangeEnvironment.GCC_HIGH
    dod = load({"EXOMI_CLOUD": "AzureUSGovernment", "EXOMI_EXCHANGE_ENVIRONMENT": "o365usgovdod"}, tmp_path)
    assert dod.exchange_environment is ExchangeEnvironment.DOD
    # DoD has a Graph of its own; ARM is Azure Government's.
    assert dod.graph_endpoint == "https://dod-graph.microsoft.us/v1.0"
    assert dod.graph_scope == "https://dod-graph.microsoft.us/.default"
    assert dod.arm_endpoint == "https://management.usgovcloudapi.net"


def test_an_exchange_environment_of_another_cloud_is_refused_naming_the_ones_that_fit(tmp_path):
    with pytest.raises(ConfigurationError) as caught:
        load({"EXOMI_EXCHANGE_ENVIRONMENT": "O365USGovGCCHigh"}, tmp_path)
    assert caught.value.setting == "EXOMI_EXCHANGE_ENVIRONMENT"
    assert "use O365Default" in caught.value.message


@pytest.mark.parametrize(
    ("environment", "connect"),
    [
        (
            ExchangeEnvironment.DEFAULT,
            "Connect-ExchangeOnline -ManagedIdentity -Organization contoso.onmicrosoft.us",
        ),
        (
            ExchangeEnvironment.GCC_HIGH,
            "Connect-ExchangeOnline -ManagedIdentity -Organization contoso.onmicrosoft.us "
            "-ExchangeEnvironmentName O365USGovGCCHigh",
        ),
    ],
)
def test_the_connect_line_names_the_exchange_environment_outside_the_commercial_cloud(environment, connect):
    assert connect_line("contoso.onmicrosoft.us", None, environment) == connect
    script = connect_script("contoso.onmicrosoft.us", CLIENT_ID, environment)
    assert f"{connect.split(' -ExchangeEnvironmentName')[0]} -ManagedIdentityAccountId {CLIENT_ID}" in script


def test_china_cloud_defaults_and_the_name_ignores_case(tmp_path):
    settings = load({"EXOMI_CLOUD": "azurechinacloud"}, tmp_path)
    assert settings.cloud is Cloud.CHINA
    assert settings.arm_endpoint == "https://management.chinacloudapi.cn"
    assert settings.arm_scope == "https://management.chinacloudapi.cn/.default"
    assert settings.graph_endpoint == "https://microsoftgraph.chinacloudapi.cn/v1.0"
    assert settings.graph_scope == "https://microsoftgraph.chinacloudapi.cn/.default"
    assert settings.exchange_environment is ExchangeEnvironment.CHINA


def test_the_environment_wins_over_local_settings(tmp_path):
    local = {
        "EXOMI_TABLE_PREFIX": "fromfile",
        "EXOMI_QUEUE_NAME": "from-file",
        "AZURE_CLIENT_ID": CLIENT_ID,
        "FUNCTIONS_WORKER_RUNTIME": "python",
    }
    settings = load({"EXOMI_TABLE_PREFIX": "fromenv"}, tmp_path, local)
    assert settings.table_prefix == "fromenv"
    assert settings.queue_name == "from-file"  # only in the file: used
    assert settings.client_id == CLIENT_ID


def test_endpoint_overrides_for_the_local_emulator(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = load(
        {
            "EXOMI_ARM_ENDPOINT": "https://127.0.0.1:50443/",
            "EXOMI_GRAPH_ENDPOINT": "https://127.0.0.1:50443/v1.0",
            "EXOMI_CA_BUNDLE": str(ca),
        },
        tmp_path,
    )
    assert settings.arm_endpoint == "https://127.0.0.1:50443"
    assert settings.graph_endpoint == "https://127.0.0.1:50443/v1.0"
    assert settings.arm_scope == "https://management.azure.com/.default"  # token audience stays ARM
    assert settings.ca_bundle == ca
    scoped = load({"EXOMI_ARM_SCOPE": "https://management.core.usgovcloudapi.net/.default"}, tmp_path)
    assert scoped.arm_scope == "https://management.core.usgovcloudapi.net/.default"


def test_storage_connection_string_is_kept_secret(tmp_path):
    secret = (
        "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=c2VjcmV0;EndpointSuffix=core.windows.net"
    )
    settings = load({"AzureWebJobsStorage": secret}, tmp_path)
    assert settings.storage.connection_string.get_secret_value() == secret
    assert "c2VjcmV0" not in repr(settings) and "c2VjcmV0" not in str(settings.model_dump())


def test_identity_based_storage(tmp_path):
    settings = load(
        {
            "AzureWebJobsStorage__tableServiceUri": "https://exomistate.table.core.windows.net",
            "AzureWebJobsStorage__queueServiceUri": "https://exomistate.queue.core.windows.net",
            "AzureWebJobsStorage__clientId": CLIENT_ID,
        },
        tmp_path,
    )
    assert settings.storage.connection_string is None
    assert settings.storage.table_service_uri == "https://exomistate.table.core.windows.net"
    assert settings.storage.queue_service_uri == "https://exomistate.queue.core.windows.net"
    assert settings.storage.client_id == CLIENT_ID


def test_no_storage_is_reported_when_storage_is_needed(tmp_path):
    settings = load({}, tmp_path)
    with pytest.raises(ConfigurationError) as caught:
        open_table_service(settings.storage)
    assert caught.value.setting == "AzureWebJobsStorage"


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"EXOMI_CLOUD": "AzureGermanCloud"}, "EXOMI_CLOUD"),
        ({"EXOMI_ARM_ENDPOINT": "http://127.0.0.1:8080"}, "EXOMI_ARM_ENDPOINT"),
        ({"EXOMI_ARM_ENDPOINT": "https://management.azure.com/?x=1"}, "EXOMI_ARM_ENDPOINT"),
        ({"EXOMI_GRAPH_ENDPOINT": "https://graph.microsoft.com"}, "EXOMI_GRAPH_ENDPOINT"),
        ({"EXOMI_GRAPH_ENDPOINT": "https://graph.microsoft.com/beta"}, "EXOMI_GRAPH_ENDPOINT"),
        ({"EXOMI_GRAPH_SCOPE": "https://graph.microsoft.com"}, "EXOMI_GRAPH_SCOPE"),
        ({"EXOMI_ARM_SCOPE": "management.azure.com/.default"}, "EXOMI_ARM_SCOPE"),
        ({"EXOMI_CA_BUNDLE": "/nonexistent/ca.pem"}, "EXOMI_CA_BUNDLE"),
        ({"EXOMI_TABLE_PREFIX": "exomi-state"}, "EXOMI_TABLE_PREFIX"),
        ({"EXOMI_TABLE_PREFIX": "x" * 53}, "EXOMI_TABLE_PREFIX"),
        ({"EXOMI_QUEUE_NAME": "Exomi_Work"}, "EXOMI_QUEUE_NAME"),
        ({"AZURE_CLIENT_ID": "my-identity"}, "AZURE_CLIENT_ID"),
        ({"AzureWebJobsStorage__accountName": "Bad.Name"}, "AzureWebJobsStorage__accountName"),
        (
            {"AzureWebJobsStorage__tableServiceUri": "http://x.table.core.windows.net"},
            "AzureWebJobsStorage__tableServiceUri",
        ),
    ],
)
def test_bad_settings_fail_loudly_naming_the_setting(env, setting, tmp_path):
    with pytest.raises(ConfigurationError) as caught:
        load(env, tmp_path)
    assert caught.value.setting == setting
    assert caught.value.message.startswith(f"setting {setting}: ")


def test_a_bad_value_in_local_settings_is_named(tmp_path):
    with pytest.raises(ConfigurationError) as caught:
        load({}, tmp_path, {"EXOMI_CLOUD": "Mars"})
    assert caught.value.setting == "EXOMI_CLOUD"
    with pytest.raises(ConfigurationError) as caught:
        load({}, tmp_path, {"EXOMI_TABLE_PREFIX": 5})
    assert caught.value.setting == "EXOMI_TABLE_PREFIX"


def test_a_malformed_local_settings_file_is_reported(tmp_path):
    path = tmp_path / "local.settings.json"
    path.write_text("{ not json")
    with pytest.raises(ConfigurationError) as caught:
        Settings.load({}, local_settings=path)
    assert str(path) in caught.value.message


def test_policy_sources_are_carried(tmp_path):
    settings = load(
        {"EXOMI_POLICY": '{"allowed_organizations": []}', "EXOMI_POLICY_FILE": "/etc/exomi/policy.json"},
        tmp_path,
    )
    assert settings.policy_json == '{"allowed_organizations": []}'
    assert str(settings.policy_file) == "/etc/exomi/policy.json"


def test_app_service_authentication_is_trusted_only_when_said_so(tmp_path):
    assert load({}, tmp_path).trust_app_service_auth is False
    assert load({"EXOMI_TRUST_APP_SERVICE_AUTH": "True"}, tmp_path).trust_app_service_auth is True
    with pytest.raises(ConfigurationError) as caught:
        load({"EXOMI_TRUST_APP_SERVICE_AUTH": "yes"}, tmp_path)
    assert caught.value.setting == "EXOMI_TRUST_APP_SERVICE_AUTH"


def test_the_callback_key_must_be_a_fernet_key_and_is_kept_secret(tmp_path):
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    settings = load({"EXOMI_CALLBACK_KEY": key}, tmp_path)
    assert settings.callback_key is not None and key not in repr(settings)
    assert load({}, tmp_path).callback_key is None
    with pytest.raises(ConfigurationError) as caught:
        load({"EXOMI_CALLBACK_KEY": "not-a-key"}, tmp_path)
    assert caught.value.setting == "EXOMI_CALLBACK_KEY"


def test_the_proxy_is_read_once_from_the_environment_and_a_bad_one_is_named(tmp_path):
    settings = load(
        {"HTTPS_PROXY": "http://proxy.contoso.com:3128", "NO_PROXY": "localhost, .contoso.com"}, tmp_path
    )
    assert settings.https_proxy == "http://proxy.contoso.com:3128"
    assert settings.no_proxy == ("localhost", ".contoso.com")
    assert load({}, tmp_path).https_proxy is None
    with pytest.raises(ConfigurationError) as caught:
        load({"HTTPS_PROXY": "socks5://proxy:1080"}, tmp_path)
    assert caught.value.setting == "HTTPS_PROXY"


def test_tenant_facts_are_kept_five_minutes_unless_set(tmp_path):
    assert load({}, tmp_path).tenant_facts_ttl == 300.0
    assert load({"EXOMI_TENANT_FACTS_TTL_SECONDS": "0"}, tmp_path).tenant_facts_ttl == 0.0
    with pytest.raises(ConfigurationError) as caught:
        load({"EXOMI_TENANT_FACTS_TTL_SECONDS": "soon"}, tmp_path)
    assert caught.value.setting == "EXOMI_TENANT_FACTS_TTL_SECONDS"
