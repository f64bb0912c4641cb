// ARM's system topic of one subscription (type Microsoft.Resources.Subscriptions, location global).
// Azure allows one per subscription: an existing one (e.g. Defender's) is reused as it is, never
// changed; it must have a system-assigned identity for dead-lettering by identity (docs/OPERATIONS.md).
param subscriptionId string
@description('The name of an existing system topic to reuse (in this resource group); empty: create one.')
param existingSystemTopicName string = ''
param newSystemTopicName string
param tags object

var reuse = !empty(existingSystemTopicName)

resource existingTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = if (reuse) {
  name: existingSystemTopicName
}

resource newTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = if (!reuse) {
  name: newSystemTopicName
  location: 'global'
  tags: tags
  identity: { type: 'SystemAssigned' }
  properties: {
    source: '/subscriptions/${subscriptionId}'
    topicType: 'Microsoft.Resources.Subscriptions'
  }
}

output name string = reuse ? existingTopic.name : newTopic.name
output principalId string = reuse ? existingTopic.identity.principalId : newTopic.identity.principalId
