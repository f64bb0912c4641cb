// exomi on Azure: what `azd up` provisions. The resource group with the Function app and its
// resources (modules/app.bicep), the alert rules (modules/alerts.bicep), and for each subscription
// exomi serves, ARM's system topic (created, or an existing one reused) with the event subscription
// of docs/OPERATIONS.md (events/*.bicep).
targetScope = 'subscription'

@minLength(1)
@maxLength(40)
@description('The azd environment name: names the resource group and, hashed, the resources.')
param environmentName string

@minLength(1)
@description('The Azure region of the resource group and its resources.')
param location string

@allowed(['SystemAssigned', 'UserAssigned'])
@description('exomi\'s own identity: the Function app\'s system-assigned identity, or a user-assigned one (which outlives the app and can be granted before it exists).')
param identityType string = 'SystemAssigned'

@description('Subscribe the on_resource_event function to ARM\'s events. Event Grid checks that the function exists, so the first provision (before any deployment) leaves it off; infra/hooks/postdeploy.sh turns it on.')
param eventsEnabled bool = false

@description('The subscriptions exomi serves: [{subscriptionId, existingSystemTopicId?, resourceGroupName?}]. With existingSystemTopicId (Azure allows one Microsoft.Resources.Subscriptions topic per subscription, e.g. one Defender made) that topic is reused; else a topic is created in resourceGroupName (default rg-<env>-events) of that subscription.')
param eventSubscriptions array = []

@description('An action group the alert rules notify (its resource id); empty: the alerts only show in the portal.')
param alertActionGroupId string = ''

var resourceGroupName = 'rg-${environmentName}'
var tags = { 'azd-env-name': environmentName }
// infra/policy.json becomes the EXOMI_POLICY app setting: edit it before `azd up` (docs/POLICY.md).
var policy = loadJsonContent('policy.json')

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: resourceGroupName
  location: location
  tags: tags
}

module app 'modules/app.bicep' = {
  name: 'exomi-app'
  scope: rg
  params: {
    environmentName: environmentName
    location: location
    tags: tags
    identityType: identityType
    policyJson: string(policy)
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'exomi-alerts'
  scope: rg
  params: {
    location: location
    tags: tags
    appInsightsId: app.outputs.appInsightsId
    actionGroupId: alertActionGroupId
  }
}

// One system topic per subscription: reuse the one that exists, else create it.
module topics 'events/topic.bicep' = [
  for (item, i) in eventSubscriptions: if (eventsEnabled) {
    name: 'exomi-topic-${i}'
    scope: resourceGroup(
      item.subscriptionId,
      empty(item.?existingSystemTopicId ?? '')
        ? item.?resourceGroupName ?? '${resourceGroupName}-events'
        : split(item.existingSystemTopicId, '/')[4]
    )
    params: {
      subscriptionId: item.subscriptionId
      existingSystemTopicName: empty(item.?existingSystemTopicId ?? '') ? '' : last(split(item.existingSystemTopicId, '/'))
      newSystemTopicName: 'exomi-arm-${item.subscriptionId}'
      tags: tags
    }
    dependsOn: [topicGroups]
  }
]

// The resource group of a new topic (creating an existing group again changes nothing).
module topicGroups 'events/resource-group.bicep' = [
  for (item, i) in eventSubscriptions: if (eventsEnabled && empty(item.?existingSystemTopicId ?? '')) {
    name: 'exomi-topic-group-${i}'
    scope: subscription(item.subscriptionId)
    params: {
      name: item.?resourceGroupName ?? '${resourceGroupName}-events'
      location: location
      tags: tags
    }
  }
]

// The topic's identity writes dead letters into exomi's container (no keys: the account has none).
module deadLetterAccess 'events/dead-letter-access.bicep' = [
  for (item, i) in eventSubscriptions: if (eventsEnabled) {
    name: 'exomi-dead-letter-access-${i}'
    scope: rg
    params: {
      storageAccountName: app.outputs.storageAccountName
      containerName: app.outputs.deadLetterContainerName
      principalId: topics[i].outputs.principalId
    }
  }
]

module subscriptions 'events/subscription.bicep' = [
  for (item, i) in eventSubscriptions: if (eventsEnabled) {
    name: 'exomi-events-${i}'
    scope: resourceGroup(
      item.subscriptionId,
      empty(item.?existingSystemTopicId ?? '')
        ? item.?resourceGroupName ?? '${resourceGroupName}-events'
        : split(item.existingSystemTopicId, '/')[4]
    )
    params: {
      systemTopicName: topics[i].outputs.name
      functionResourceId: '${app.outputs.functionAppId}/functions/on_resource_event'
      exomiPrincipalId: app.outputs.principalId
      deadLetterStorageAccountId: app.outputs.storageAccountId
      deadLetterContainerName: app.outputs.deadLetterContainerName
    }
    dependsOn: [deadLetterAccess]
  }
]

// azd reads these into the environment (.azure/<env>/.env); the hooks use them.
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = app.outputs.functionAppName
output EXOMI_PRINCIPAL_ID string = app.outputs.principalId
output EXOMI_CLIENT_ID string = app.outputs.clientId
output EXOMI_EVENTS_ENABLED bool = eventsEnabled
