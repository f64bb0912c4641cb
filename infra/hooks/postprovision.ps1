# azd postprovision hook on Windows (pwsh): what postprovision.sh does, in PowerShell. Give exomi's
# identity the permissions it needs (docs/PERMISSIONS.md). azd exports the deployment's outputs:
# EXOMI_PRINCIPAL_ID (exomi's object id), AZURE_FUNCTION_APP_NAME.
$ErrorActionPreference = 'Stop'
if (Get-Command exomi -ErrorAction SilentlyContinue) {
  exomi bootstrap --help *>$null
  if ($LASTEXITCODE -eq 0) {
    exomi bootstrap
    exit $LASTEXITCODE
  }
}
$app = if ($env:AZURE_FUNCTION_APP_NAME) { $env:AZURE_FUNCTION_APP_NAME } else { '?' }
$principal = if ($env:EXOMI_PRINCIPAL_ID) { $env:EXOMI_PRINCIPAL_ID } else { '?' }
Write-Output @"
exomi's infrastructure is provisioned (Function app $app).
There is no 'exomi bootstrap' to run here (install exomi with 'pip install .'; a version without that
command needs the steps by hand). Grant exomi's identity (object id $principal) its
permissions as docs/PERMISSIONS.md describes:
  1. the Microsoft Graph application permissions (Application.Read.All, AppRoleAssignment.ReadWrite.All,
     RoleManagement.ReadWrite.Directory), with the Graph PowerShell lines of that page;
  2. the Azure roles (Reader, Automation Contributor, Virtual Machine Contributor, or the custom role
     of that page) at every scope in the policy's allowed_scopes (infra/policy.json).
"@
