#!/bin/sh
# azd postdeploy hook: Event Grid subscribes the on_resource_event function only once it is deployed.
# After the first deployment, turn the event subscriptions on and provision them (once: the setting
# stays in the azd environment).
set -eu
if [ "${EXOMI_EVENTS_ENABLED:-false}" = "true" ]; then
  exit 0
fi
echo "exomi is deployed: subscribing on_resource_event to ARM's events (infra/events)."
azd env set EXOMI_EVENTS_ENABLED true
azd provision --no-prompt
