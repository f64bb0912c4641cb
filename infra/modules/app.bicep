// The Function app (Flex Consumption, Python 3.11), its identity, storage reached by identity only,
// and Application Insights with Entra authentication over Log Analytics.
param environmentName string
param location string
param tags object
@allowed(['SystemAssigned', 'UserAssigned'])
param identityType string
@description('The policy as JSON text: the EXOMI_POLICY app setting.')
param policyJson string
@description('The most instances Flex Consumption may scale out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

var token = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var userAssigned = identityType == 'UserAssigned'
var deploymentContainerName = 'app-package'
var deadLetterContainerName = 'exomi-deadletter'
// Built-in role definition ids (learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

module identity 'br/public:avm/res/managed-identity/user-assigned-identity:0.4.1' = if (userAssigned) {
  name: 'exomi-identity'
  params: {
    name: 'id-exomi-${token}'
    location: location
    tags: tags
  }
}

module workspace 'br/public:avm/res/operational-insights/workspace:0.12.0' = {
  name: 'exomi-workspace'
  params: {
    name: 'log-exomi-${token}'
    location: location
    tags: tags
  }
}

// Entra authentication only: telemetry without a token from an identity holding Monitoring Metrics
// Publisher is refused (learn.microsoft.com/azure/azure-monitor/app/azure-ad-authentication).
resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-exomi-${token}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.outputs.resourceId
    DisableLocalAuth: true
  }
}

// No shared keys: the app, the Functions host and Event Grid reach it with their identities.
resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'stexomi${take(token, 16)}'
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
  }
}

resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobs
  name: deploymentContainerName
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobs
  name: deadLetterContainerName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-exomi-${token}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { name: 'FC1', tier: 'FlexConsumption' }
  properties: { reserved: true }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: 'func-exomi-${token}'
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: userAssigned
    ? { type: 'UserAssigned', userAssignedIdentities: { '${identity.outputs.resourceId}': {} } }
    : { type: 'SystemAssigned' }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: { minTlsVersion: '1.2', ftpsState: 'Disabled' }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: userAssigned
            ? { type: 'UserAssignedIdentity', userAssignedIdentityResourceId: identity.outputs.resourceId }
            : { type: 'SystemAssignedIdentity' }
        }
      }
      scaleAndConcurrency: { maximumInstanceCount: maximumInstanceCount, instanceMemoryMB: instanceMemoryMB }
      runtime: { name: 'python', version: '3.11' }
    }
  }
  dependsOn: [deploymentContainer]
}

// No basic-auth publishing (FTP, SCM/Kudu): code reaches exomi only through Entra-authenticated
// deployments (azd uses the deployer's token), since whoever deploys code acts as exomi's identity.
resource publishingCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = [
  for method in ['ftp', 'scm']: {
    parent: site
    name: method
    properties: { allow: false }
  }
]

var principalId = userAssigned ? identity.outputs.principalId : site.identity.principalId
var clientId = userAssigned ? identity.outputs.clientId : ''

// Every app setting exomi and the Functions host read in Azure (the rest keep their defaults:
// docs/OPERATIONS.md, "App settings"; tests/unit/test_infra.py checks the two together).
var baseSettings = {
  AzureWebJobsStorage__accountName: storage.name
  AzureWebJobsStorage__credential: 'managedidentity'
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: userAssigned
    ? 'ClientId=${clientId};Authorization=AAD'
    : 'Authorization=AAD'
  EXOMI_CLOUD: environment().name
  EXOMI_POLICY: policyJson
  EXOMI_PRINCIPAL_ID: principalId
}
// A user-assigned identity is named by its client id, for storage and for exomi's own tokens.
var userAssignedSettings = userAssigned
  ? {
      AzureWebJobsStorage__clientId: clientId
      AZURE_CLIENT_ID: clientId
    }
  : {}

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: union(baseSettings, userAssignedSettings)
}

resource storageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for role in [roles.storageBlobDataOwner, roles.storageQueueDataContributor, roles.storageTableDataContributor]: {
    name: guid(storage.id, site.id, role)
    scope: storage
    properties: {
      principalId: principalId
      principalType: 'ServicePrincipal'
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
    }
  }
]

resource telemetryRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, site.id, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
  }
}

output functionAppId string = site.id
output functionAppName string = site.name
output principalId string = principalId
output clientId string = clientId
output storageAccountId string = storage.id
output storageAccountName string = storage.name
output deadLetterContainerName string = deadLetterContainer.name
output appInsightsId string = appInsights.id
