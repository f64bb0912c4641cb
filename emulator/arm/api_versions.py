"""api-versions each emulated resource provider accepts: what the pinned SDKs send, plus a few
recent ones that tools commonly use."""

RESOURCES = frozenset(
    {"2021-04-01", "2022-09-01", "2024-03-01", "2024-07-01", "2024-11-01", "2025-01-01", "2025-04-01"}
)
SUBSCRIPTIONS = frozenset({"2016-06-01", "2020-01-01", "2021-01-01", "2022-12-01", "2024-11-01"})
AUTOMATION = frozenset({"2023-11-01", "2024-10-23"})
# Runtime environments and their packages are new in 2024-10-23.
AUTOMATION_RUNTIME_ENVIRONMENTS = frozenset({"2024-10-23"})
MANAGED_IDENTITY = frozenset({"2023-01-31", "2023-07-31-preview", "2024-11-30"})
COMPUTE = frozenset({"2024-07-01", "2024-11-01", "2025-04-01", "2025-11-01", "2026-04-01"})
# Microsoft.Authorization role assignments and role definitions: the 2022-04-01 shapes only (what
# azure-mgmt-authorization 4.0.0 sends by default).
AUTHORIZATION = frozenset({"2022-04-01"})
