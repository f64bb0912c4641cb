#!/bin/sh
# azd postprovision hook: give exomi's identity the permissions it needs (docs/PERMISSIONS.md).
# azd exports the deployment's outputs: EXOMI_PRINCIPAL_ID (exomi's object id), AZURE_FUNCTION_APP_NAME.
set -eu
if command -v exomi >/dev/null 2>&1 && exomi bootstrap --help >/dev/null 2>&1; then
  exec exomi bootstrap --principal-id "$EXOMI_PRINCIPAL_ID"
fi
cat <<MSG
exomi's infrastructure is provisioned (Function app $AZURE_FUNCTION_APP_NAME).
This exomi has no 'exomi bootstrap' command yet: grant its identity (object id $EXOMI_PRINCIPAL_ID)
its permissions by hand, as docs/PERMISSIONS.md describes:
  1. the Microsoft Graph application permissions (Application.Read.All, AppRoleAssignment.ReadWrite.All,
     RoleManagement.ReadWrite.Directory), with the Graph PowerShell lines of that page;
  2. the Azure roles (Reader, Automation Contributor, Virtual Machine Contributor, or the custom role
     of that page) at every scope in the policy's allowed_scopes (infra/policy.json).
MSG
