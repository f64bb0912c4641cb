"""The Run Command scripts the compute tests send: the seed procedure's module install on a VM, and the
connection test (Windows PowerShell 5.1 through RunPowerShellScript)."""

from __future__ import annotations

ORG = "contoso.onmicrosoft.com"
INSTALL = [
    "$ErrorActionPreference = 'Stop'",
    "Install-Module PackageManagement -RequiredVersion 1.4.8.1 -Force",
    "Install-Module PowerShellGet -RequiredVersion 2.2.5 -Force",
    "Install-Module ExchangeOnlineManagement -RequiredVersion 3.5.1 -Force",
]
CONNECT = [
    "$ErrorActionPreference = 'Stop'",
    f"Connect-ExchangeOnline -ManagedIdentity -Organization {ORG}",
    "Get-AcceptedDomain | Format-Table Name",
]
