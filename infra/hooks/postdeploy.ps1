# azd postdeploy hook on Windows (pwsh): what postdeploy.sh does, in PowerShell. Event Grid subscribes
# the on_resource_event function only once it is deployed. After the first deployment, turn the event
# subscriptions on and provision them (once: the setting stays in the azd environment).
$ErrorActionPreference = 'Stop'
if ($env:EXOMI_EVENTS_ENABLED -eq 'true') {
  exit 0
}
Write-Output "exomi is deployed: subscribing on_resource_event to ARM's events (infra/events)."
azd env set EXOMI_EVENTS_ENABLED true
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
azd provision --no-prompt
exit $LASTEXITCODE
