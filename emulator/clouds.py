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
    def resources(self) -> frozenset[str]:
        """The token resources (audiences) that exist in this cloud's Entra, among those the emulator knows."""
        return frozenset((*self.arm_audiences, *self.graph_audiences, self.exchange_resource))

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


def resource_not_found(resource: str, tenant_id: str) -> str:
    """Entra's AADSTS500011 text for a token asked for a resource the tenant's cloud does not have."""
    return (
        f"AADSTS500011: The resource principal named {resource} was not found in the tenant named {tenant_id}. "
        "This can happen if the application has not been installed by the administrator of the tenant or "
        "consented to by any user in the tenant. You might have sent your authentication request to the wrong "
        "tenant."
    )


def foreign_resource(cloud: Cloud, resource: str) -> bool:
    """A resource of another cloud's ARM, Graph or Exchange Online, which this cloud's Entra does not know
    (a GCC High identity asking for https://management.azure.com). Others (storage, Key Vault, ...) are not
    modelled and stay allowed. ``resource`` is already normalised (no trailing slash or /.default)."""
    wanted = resource.lower()
    known_elsewhere = {r.lower() for other in CLOUDS.values() for r in other.resources}
    return wanted in known_elsewhere and wanted not in {r.lower() for r in cloud.resources}


def cloud_named(exchange_environment: str) -> Cloud:
    """The cloud of a Microsoft 365 environment name (case-insensitive); ValueError for others."""
    for name, cloud in CLOUDS.items():
        if name.lower() == exchange_environment.lower():
            return cloud
    raise ValueError(f"cloud must be one of {', '.join(CLOUDS)}, got {exchange_environment!r}")
