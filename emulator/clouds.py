"""The clouds a tenant can live in: which token audiences ARM and Graph accept there, where its users
sign in, and which Exchange Online environment it has (``Connect-ExchangeOnline -ExchangeEnvironmentName``).

An Azure cloud and a Microsoft 365 environment go together: a US Government tenant is GCC High or DoD
(the same Azure Government ARM, different Graph and Exchange hosts). Sources in emulator/README.md
("Clouds").
"""

from __future__ import annotations

from dataclasses import dataclass

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"  # Microsoft Graph's app id, the same in every cloud
EXCHANGE_ENVIRONMENTS = ("O365Default", "O365GermanyCloud", "O365China", "O365USGovGCCHigh", "O365USGovDoD")


@dataclass(frozen=True)
class Cloud:
    azure_cloud: str  # az cloud / Azure PowerShell name
    exchange_environment: str  # Connect-ExchangeOnline -ExchangeEnvironmentName
    arm_audiences: tuple[str, ...]
    graph_audiences: tuple[str, ...]
    login_host: str
    exchange_resource: str  # the resource the module asks a managed identity token for

    @property
    def arm_scope(self) -> str:
        return f"{self.arm_audiences[0]}/.default"

    @property
    def graph_scope(self) -> str:
        return f"{self.graph_audiences[0]}/.default"


CLOUDS = {
    cloud.exchange_environment: cloud
    for cloud in (
        Cloud(
            "AzureCloud",
            "O365Default",
            ("https://management.azure.com", "https://management.core.windows.net"),
            ("https://graph.microsoft.com", GRAPH_APP_ID),
            "login.microsoftonline.com",
            "https://outlook.office365.com",
        ),
        Cloud(
            "AzureUSGovernment",
            "O365USGovGCCHigh",
            ("https://management.usgovcloudapi.net", "https://management.core.usgovcloudapi.net"),
            ("https://graph.microsoft.us", GRAPH_APP_ID),
            "login.microsoftonline.us",
            "https://outlook.office365.us",
        ),
        Cloud(
            "AzureUSGovernment",
            "O365USGovDoD",
            ("https://management.usgovcloudapi.net", "https://management.core.usgovcloudapi.net"),
            ("https://dod-graph.microsoft.us", GRAPH_APP_ID),
            "login.microsoftonline.us",
            "https://webmail.apps.mil",
        ),
        Cloud(
            "AzureChinaCloud",
            "O365China",
            ("https://management.chinacloudapi.cn", "https://management.core.chinacloudapi.cn"),
            ("https://microsoftgraph.chinacloudapi.cn", GRAPH_APP_ID),
            "login.chinacloudapi.cn",
            "https://partner.outlook.cn",
        ),
    )
}
COMMERCIAL = CLOUDS["O365Default"]


def cloud_named(exchange_environment: str) -> Cloud:
    """The cloud of a Microsoft 365 environment name (case-insensitive); ValueError for others."""
    for name, cloud in CLOUDS.items():
        if name.lower() == exchange_environment.lower():
            return cloud
    raise ValueError(f"cloud must be one of {', '.join(CLOUDS)}, got {exchange_environment!r}")
