// The event subscription of docs/OPERATIONS.md: ARM writes and deletes of exomi's target types and
// tag changes, delivered to the on_resource_event function (endpoint type AzureFunction: no URL or key),
// retried (30 attempts, 24 h), then dead-lettered into exomi's container by the topic's identity.
param systemTopicName string
param functionResourceId string
@description('exomi\'s own object id: events of its own writes are dropped before delivery.')
param exomiPrincipalId string
param deadLetterStorageAccountId string
param deadLetterContainerName string

var targetTypes = [
  'Microsoft.Automation/automationAccounts'
  'Microsoft.Compute/virtualMachines'
  'Microsoft.Compute/virtualMachineScaleSets'
  'Microsoft.ManagedIdentity/userAssignedIdentities'
  'Microsoft.Web/sites'
]

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: systemTopicName
}

resource events 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: topic
  name: 'exomi-tags'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: functionResourceId
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.Resources.ResourceWriteSuccess'
        'Microsoft.Resources.ResourceDeleteSuccess'
      ]
      advancedFilters: [
        {
          operatorType: 'StringIn'
          key: 'data.operationName'
          values: concat(
            flatten(map(targetTypes, t => ['${t}/write', '${t}/delete'])),
            ['Microsoft.Resources/tags/write', 'Microsoft.Resources/tags/delete']
          )
        }
        {
          operatorType: 'StringContains'
          key: 'subject'
          values: map(targetTypes, t => '/providers/${t}/')
        }
        {
          operatorType: 'StringNotIn'
          key: 'data.authorization.evidence.principalId'
          values: [replace(exomiPrincipalId, '-', '')]
        }
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
    deadLetterWithResourceIdentity: {
      identity: { type: 'SystemAssigned' }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: deadLetterStorageAccountId
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}
