"""The cloud's endpoint metadata (``GET /metadata/endpoints``), served without a token as ARM does:
what ``az cloud register --endpoint-resource-manager`` and Azure PowerShell's ``Add-AzEnvironment
-AutoDiscover`` read to learn a cloud's endpoints.

The name, sign-in host, ARM audiences and Graph resource id are those of the tenant's cloud
(emulator/clouds.py: public by default); the other endpoints and suffixes are the public cloud's
(not emulated per cloud); ``resourceManager`` is the emulator's own address. Graph is served on the same host (``/v1.0``), so clients that call Graph
through ``microsoftGraphResourceId`` must be pointed at ``{resourceManager}v1.0`` explicitly.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from emulator.arm.router import ArmContext, ArmRouter, arm_json
from emulator.clouds import COMMERCIAL, Cloud

# 2022-09-01: one object, this cloud's (what azure-cli 2.91 asks for); 2019-05-01 and 2020-06-01: an
# array of environments (Add-AzEnvironment's documented payload).
SINGLE = frozenset({"2022-09-01"})
LISTS = frozenset({"2019-05-01", "2020-06-01"})


def cloud_metadata(resource_manager: str, cloud: Cloud = COMMERCIAL) -> dict[str, Any]:
    """The cloud's entry (field names and values as ARM's template function ``environment()`` and the
    metadata endpoint show them), with the emulator as ``resourceManager``."""
    return {
        "name": cloud.azure_cloud,
        "portal": "https://portal.azure.com",
        "authentication": {
            "loginEndpoint": f"https://{cloud.login_host}/",
            "audiences": [f"{audience}/" for audience in reversed(cloud.arm_audiences)],
            "tenant": "common",
            "identityProvider": "AAD",
        },
        "media": "https://rest.media.azure.net",
        "graphAudience": "https://graph.windows.net/",
        "graph": "https://graph.windows.net/",
        "suffixes": {
            "azureDataLakeStoreFileSystem": "azuredatalakestore.net",
            "acrLoginServer": "azurecr.io",
            "sqlServerHostname": ".database.windows.net",
            "azureDataLakeAnalyticsCatalogAndJob": "azuredatalakeanalytics.net",
            "keyVaultDns": "vault.azure.net",
            "storage": "core.windows.net",
            "azureFrontDoorEndpointSuffix": "azurefd.net",
        },
        "batch": "https://batch.core.windows.net/",
        "resourceManager": resource_manager.rstrip("/") + "/",
        "vmImageAliasDoc": "https://raw.githubusercontent.com/Azure/azure-rest-api-specs/master/arm-compute/quickstart-templates/aliases.json",
        "activeDirectoryDataLake": "https://datalake.azure.net/",
        "sqlManagement": "https://management.core.windows.net:8443/",
        "microsoftGraphResourceId": f"{cloud.graph_audiences[0]}/",
        "gallery": "https://gallery.azure.com/",
    }


async def get_metadata_endpoints(ctx: ArmContext) -> web.Response:
    metadata = cloud_metadata(ctx.runtime.base_url, ctx.runtime.tenant.cloud)
    return arm_json(metadata if ctx.api_version in SINGLE else [metadata])


def register(router: ArmRouter) -> None:
    router.add(
        "GET",
        "/metadata/endpoints",
        get_metadata_endpoints,
        action="",
        api_versions=SINGLE | LISTS,
        provider="Microsoft.Resources",
        resource_type="metadata",
        anonymous=True,
    )
