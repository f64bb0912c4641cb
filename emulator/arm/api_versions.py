"""api-versions each emulated resource provider accepts: the stable (and, where a client sends one,
preview) versions azure-rest-api-specs publishes for the resource types served, answered in the
shape the emulator knows (the pinned SDKs' version). Sources: emulator/README.md, "api-versions"."""

# specification/resources/resource-manager/Microsoft.Resources/stable/{v}/resources.json (resource
# groups, resources, tags, tagNames, providers); the Tags API is in every one from 2019-10-01.
RESOURCES = frozenset(
    {
        "2019-10-01",
        "2020-06-01",
        "2020-08-01",
        "2020-10-01",
        "2021-01-01",
        "2021-04-01",
        "2022-09-01",
        "2024-03-01",
        "2024-07-01",
        "2024-11-01",
        "2025-01-01",
        "2025-04-01",
    }
)
# .../Microsoft.Resources/stable/{v}/subscriptions.json (subscriptions, locations).
SUBSCRIPTIONS = frozenset({"2016-06-01", "2020-01-01", "2021-01-01", "2022-12-01", "2024-11-01"})
# specification/automation/resource-manager/Microsoft.Automation/stable/{v}/: 2022-08-08 is the first stable
# version with the PowerShell 7 runbook types (PowerShell7, PowerShell72); older ones predate them.
AUTOMATION = frozenset({"2022-08-08", "2023-11-01", "2024-10-23"})
# Runtime environments and their packages are new in 2024-10-23.
AUTOMATION_RUNTIME_ENVIRONMENTS = frozenset({"2024-10-23"})
# specification/msi/resource-manager/Microsoft.ManagedIdentity/ManagedIdentity/{stable,preview}/{v}/
# ManagedIdentity.json; azure-cli 2.91 sends 2025-05-31-preview.
MANAGED_IDENTITY = frozenset(
    {
        "2018-11-30",
        "2021-09-30-preview",
        "2022-01-31-preview",
        "2023-01-31",
        "2023-07-31-preview",
        "2024-11-30",
        "2025-01-31-preview",
        "2025-05-31-preview",
        "2026-04-30",
        "2026-05-31",
    }
)
COMPUTE = frozenset({"2024-07-01", "2024-11-01", "2025-04-01", "2025-11-01", "2026-04-01"})
# Microsoft.Authorization role assignments: the 2022-04-01 shapes (what azure-mgmt-authorization
# 4.0.0 sends by default).
AUTHORIZATION = frozenset({"2022-04-01"})
# Role definitions also at .../Microsoft.Authorization/preview/2022-05-01-preview/
# authorization-RoleDefinitionsCalls.json, which azure-cli 2.91 reads them with.
AUTHORIZATION_ROLE_DEFINITIONS = AUTHORIZATION | {"2022-05-01-preview"}
# Microsoft.Web/sites: what azure-mgmt-web 11.0.1 sends (2025-05-01) and one more published stable version
# (specification/web/resource-manager/Microsoft.Web/stable/2024-04-01/WebApps.json); the shapes follow the SDK.
WEB = frozenset({"2024-04-01", "2025-05-01"})
