#!/bin/sh
# azd postprovision hook: give exomi's identity the permissions it needs (docs/PERMISSIONS.md).
# azd exports the deployment's outputs: EXOMI_PRINCIPAL_ID (exomi's object id), AZURE_FUNCTION_APP_NAME.
set -eu
if command -v exomi >/dev/null 2>&1 && exomi bootstrap --help >/dev/null 2>&1; then
  exec exomi bootstrap
fi
cat <<MSG
exomi's infrastructure is provisioned (Function app ${AZURE_FUNCTION_APP_NAME:-?}).
There is no 'exomi bootstrap' to run here (install exomi with 'pip install .'; a version without that
command needs the steps by hand). Grant exomi's identity (object id ${EXOMI_PRINCIPAL_ID:-?}) its
permissions as docs/PERMISSIONS.md describes:
  1. the Microsoft Graph application permissions (Application.Read.All, AppRoleAssignment.ReadWrite.All,
     RoleManagement.ReadWrite.Directory), with the Graph PowerShell lines of that page;
  2. the Azure roles (Reader, Automation Contributor, Virtual Machine Contributor, or the custom role
     of that page) at every scope in the policy's allowed_scopes (infra/policy.json).
MSG
