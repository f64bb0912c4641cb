// Log alerts on what a security team must see. Each query matches a log line the code writes (the
// Functions host sends the worker's log records to the App Insights `traces` table, `message` column):
//   extra privilege  shared/reconcile.py    "drift on <target>: extra entra-role:<role>: ... more than the <role> it asked for ..."
//   refusals         shared/service.py      "refused <operation> of <target> through <channel> for <who> (rule <field>): ..."
//   heal failures    shared/reconcile.py    "healing <target> with request <id>", then shared/engine/runner.py
//                    "request <id> step <step> failed: ..." or shared/service.py "request <id> ended failed: ...";
//                    and "policy refuses to heal <target> (rule ...)"
//   failed requests  the host's `requests` table: a function invocation that failed (success == false)
param location string
param tags object
param appInsightsId string
@description('An action group to notify (resource id); empty: none.')
param actionGroupId string = ''

var guid36 = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}'
var rules = [
  {
    name: 'failed-invocations'
    title: 'exomi: failed function invocations'
    description: 'A trigger of the Function app failed (an HTTP call answered 5xx, a queue item or event failed).'
    severity: 2
    window: 'PT15M'
    query: 'requests | where success == false'
  }
  {
    name: 'extra-privilege'
    title: 'exomi: an identity holds more than it asked for'
    description: 'Reconciliation found an identity exomi provisioned holding an Entra role above the one its target asked for (Global Administrator first). exomi reports it and never removes it: see GET /api/findings.'
    severity: 1
    window: 'PT15M'
    query: 'traces | where message startswith "drift on " and message has ": extra entra-role:" and message has "more than the"'
  }
  {
    name: 'refusals'
    title: 'exomi: refused attempts'
    description: 'Someone asked for Exchange Online access the policy does not give them (a tag write, an API call, an approval). A burst is someone trying to tag their way to Exchange rights: see GET /api/refusals.'
    severity: 2
    window: 'PT15M'
    query: 'traces | where message startswith "refused "'
  }
  {
    name: 'heal-failures'
    title: 'exomi: healing drift failed'
    description: 'A provision request reconciliation started to heal drift failed, or the policy refused to heal: the target stays without what it needs.'
    severity: 1
    // A heal can fail hours after it started: look a day back for the heal, 15 minutes for its failure.
    window: 'P1D'
    query: 'let heals = traces | where message startswith "healing " | extend id = extract(@"with request (${guid36})", 1, message) | distinct id; traces | where timestamp > ago(15m) | where message matches regex @"^request ${guid36} (step \\S+ failed|ended failed)" or message startswith "policy refuses to heal " | extend id = extract(@"^request (${guid36})", 1, message) | where isempty(id) or id in (heals)'
  }
]

resource alerts 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [
  for rule in rules: {
    name: 'exomi-${rule.name}'
    location: location
    tags: tags
    kind: 'LogAlert'
    properties: {
      displayName: rule.title
      description: rule.description
      severity: rule.severity
      enabled: true
      scopes: [appInsightsId]
      evaluationFrequency: 'PT15M'
      windowSize: rule.window
      criteria: {
        allOf: [
          {
            query: rule.query
            timeAggregation: 'Count'
            operator: 'GreaterThan'
            threshold: 0
            failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
          }
        ]
      }
      autoMitigate: false
      actions: { actionGroups: empty(actionGroupId) ? [] : [actionGroupId] }
    }
  }
]
