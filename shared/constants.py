"""Well-known identifiers and names of the Exchange Online managed-identity procedure."""

from __future__ import annotations

# The "Office 365 Exchange Online" first-party application and its app role for app-only access.
EXO_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
EXCHANGE_MANAGE_AS_APP_ROLE_ID = "dc50a0fb-09a3-484d-be87-e023b12c6440"
# Look-alikes such as Exchange.ManageAsAppV2 exist on the same service principal and do not work.
EXCHANGE_MANAGE_AS_APP_VALUE = "Exchange.ManageAsApp"

# The Entra roles the procedure supports, by display name -> role template id (built-in roles have
# id == templateId in Microsoft Graph v1.0).
GLOBAL_ADMINISTRATOR = "Global Administrator"
SUPPORTED_ROLES: dict[str, str] = {
    "Compliance Administrator": "17315797-102d-40b4-93e0-432062caca18",
    "Exchange Administrator": "29232cdf-9323-42fd-ade2-1d097af3e4de",
    "Exchange Recipient Administrator": "31392ffb-586c-42d1-9346-e59415a2cc4e",
    GLOBAL_ADMINISTRATOR: "62e90394-69f5-4237-9190-012177145e10",
    "Global Reader": "f2ef992c-3afb-46b9-b7cf-a126ee74c451",
    "Helpdesk Administrator": "729827e3-9c14-49f7-bb1b-9608f156bbb8",
    "Security Administrator": "194ae4cb-b126-40b2-bd5b-6091b380977d",
    "Security Reader": "5d6b6bb7-de71-4623-b4af-96380a352509",
}

# PowerShell modules. The REST-based ExchangeOnlineManagement V3 also needs current PackageManagement
# and PowerShellGet; they are listed in import order (dependencies first).
EXCHANGE_ONLINE_MANAGEMENT = "ExchangeOnlineManagement"
PACKAGE_MANAGEMENT = "PackageManagement"
POWERSHELL_GET = "PowerShellGet"
MODULE_NAMES: tuple[str, ...] = (PACKAGE_MANAGEMENT, POWERSHELL_GET, EXCHANGE_ONLINE_MANAGEMENT)

# Names exomi gives the things it creates, unless the request names them.
DEFAULT_RUNBOOK_NAME = "exomi-connect-exchange"
RUNTIME_ENVIRONMENT_NAME_FORMAT = "exomi-powershell-{major}-{minor}"  # e.g. exomi-powershell-7-4
