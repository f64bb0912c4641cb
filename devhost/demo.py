"""The demo behind ``scripts/demo.sh``: exomi's user stories, end to end, on this machine.

It starts the tenant emulator (where exomi's identity holds nothing yet), Azurite and the local Functions
host (devhost, running the real ``function_app.py``, with App Service Authentication's caller headers
trusted as in Azure behind it), runs ``exomi bootstrap --apply`` as the admin (exomi's Graph permissions,
its Azure roles, the Event Grid system topic and the event subscription to the host's Event Grid
trigger, handshake included), and then:

1. the platform admin (a rule of the policy names them) tags an Automation account and it becomes
   verified (Event Grid -> request -> queue worker);
2. somebody whose only right is Tag Contributor tags another account: refused, nothing granted, the
   attempt is in the refusal log;
3. a Logic-Apps-style client asks for Exchange Administrator for a user-assigned identity; the request
   waits for approval (202 + Location + Retry-After all along), secops approves it, and it ends verified;
4. the admin removes the tag and the access is revoked.

It ends with a summary (what was granted, how long each story took) and leaves nothing running.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

import httpx
from azure.identity import ManagedIdentityCredential
from azure.mgmt.automation import AutomationClient
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.resource.resources import ResourceManagementClient

from devhost.azurite import AzuriteProcess
from devhost.process import DevHostProcess
from emulator.process import EmulatorProcess

ROOT = Path(__file__).resolve().parent.parent
RG, LOCATION = "ContosoRG", "westeurope"
# Realistic shapes, short enough for a demo: replication, propagation, imports and jobs all happen.
TIMINGS = {
    "replication_delay": 2,
    "propagation_delay": 3,
    "module_import": 2,
    "lro": 0.3,
    "job_start": 0.5,
    "job_run": 1,
    "run_command": 1,
    "retry_after": 1,
}
START = time.monotonic()
T = TypeVar("T")


def say(text: str = "", *, indent: int = 0) -> None:
    stamp = f"[{time.monotonic() - START:6.1f}s]"
    print(f"{stamp} {' ' * indent}{text}", flush=True)


def known(value: T | None, what: str) -> T:
    """A field the SDK's models type as optional but ARM always returns for a resource it just made."""
    if value is None:
        raise RuntimeError(f"ARM returned no {what}")
    return value


class Demo:
    def __init__(self, stack: ExitStack) -> None:
        say("starting the tenant emulator, Azurite and the local Functions host")
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="exomi-demo-")))
        self.info = stack.enter_context(
            EmulatorProcess(
                "--timings", json.dumps(TIMINGS), "--without-app-permissions", state_dir=workdir / "emulator"
            )
        )
        storage = stack.enter_context(AzuriteProcess())
        os.environ.update(self.info.identity_env())
        self.organization = self.info.organization
        self.control = stack.enter_context(httpx.Client(verify=self.info.ca_bundle, timeout=30))
        # Who is who: the Logic App's managed identity, the security team's approver, and someone who
        # may only write tags (all principals of the emulated tenant, with their own tokens).
        self.logic_app = self._principal("logic-exo-provisioning")
        self.approver = self._principal("secops@contoso.com")
        self.tagger = self._principal("tag-writer@contoso.com")
        self.rg_id = f"/subscriptions/{self.info.subscription_id}/resourceGroups/{RG}"
        self._control(
            "POST",
            "/rbac",
            {"principal_id": self.tagger["id"], "role": "Tag Contributor", "scope": self.rg_id},
        )
        policy = {
            "allowed_organizations": [self.organization],
            "allowed_scopes": [f"/subscriptions/{s}" for s in self.info.subscription_ids],
            "allowed_roles": [
                "Exchange Recipient Administrator",
                "Exchange Administrator",
                "Security Reader",
            ],
            # Who may ask for what (docs/POLICY.md): the platform admin through tags, the service desk's
            # Logic App over HTTP; an app team's Owners and Contributors through tags, with approval.
            "rules": [
                {"name": "platform-team", "channels": ["tag"], "principals": [self.info.admin_principal_id]},
                {"name": "service-desk", "channels": ["logicapps"], "principals": [self.logic_app["id"]]},
                {
                    "name": "app-team",
                    "channels": ["tag"],
                    "target_roles": ["Owner", "Contributor"],
                    "scopes": [self.rg_id],
                    "require_approval": True,
                },
            ],
            "approval": {
                "approvers": [self.approver["id"]],
                "required_for_roles": ["Exchange Administrator"],
                "timeout": "PT1H",
            },
        }
        settings = {
            "FUNCTIONS_WORKER_RUNTIME": "python",
            **self.info.identity_env(),
            "EXOMI_ARM_ENDPOINT": self.info.arm_endpoint,
            "EXOMI_GRAPH_ENDPOINT": self.info.graph_endpoint,
            "EXOMI_CA_BUNDLE": self.info.ca_bundle,
            "AzureWebJobsStorage": storage,
            "EXOMI_POLICY": json.dumps(policy),
            "EXOMI_POLL_SECONDS": "0.5",
            "EXOMI_MAX_POLL_SECONDS": "2",
            # The emulated grants reach the identity's token after TIMINGS["propagation_delay"].
            "EXOMI_PROPAGATION_SECONDS": str(TIMINGS["propagation_delay"]),
            "EXOMI_TAG_SETTLE_SECONDS": "1",
            "EXOMI_TRUST_APP_SERVICE_AUTH": "true",
            "AzureFunctionsJobHost__extensions__queues__maxPollingInterval": "00:00:00.500",
        }
        self.settings = settings
        self.host = stack.enter_context(
            DevHostProcess(ROOT, env=settings, log_file=workdir / "functions.log")
        )
        say(f"emulator: ARM and Graph at {self.info.arm_endpoint}; tenant {self.info.tenant_id}", indent=2)
        say(f"Functions host: {self.host.url} with {len(self.host.info['functions'])} functions", indent=2)
        # The demo reads requests as the approver (an approver may use the API); App Service
        # Authentication would add these headers in Azure.
        self.api = stack.enter_context(
            httpx.Client(
                base_url=self.host.url,
                headers={"x-functions-key": self.host.info["function_key"], **self._easy_auth(self.approver)},
                timeout=30,
            )
        )
        admin = ManagedIdentityCredential(client_id=self.info.admin_client_id)
        self.arm = {
            "base_url": self.info.arm_endpoint,
            "connection_verify": self.info.ca_bundle,
            "polling_interval": 0.5,
        }
        self.resources = ResourceManagementClient(admin, self.info.subscription_id, **self.arm)
        self.automation = AutomationClient(admin, self.info.subscription_id, **self.arm)
        self.msi = ManagedServiceIdentityClient(admin, self.info.subscription_id, **self.arm)
        self.summary: list[dict[str, Any]] = []
        self.bootstrap(admin)

    def bootstrap(self, admin: ManagedIdentityCredential) -> None:
        """What an admin does once after deploying: ``exomi bootstrap`` with their own rights."""
        for subscription in self.info.subscription_ids:  # where new system topics go
            ResourceManagementClient(admin, subscription, **self.arm).resource_groups.create_or_update(
                "rg-exomi", {"location": LOCATION}
            )
        webhook = f"{self.host.url}/runtime/webhooks/eventgrid?functionName=on_resource_event"
        command = [sys.executable, "-m", "shared.cli", "bootstrap", "--apply"]
        command += ["--principal-id", self.info.app_principal_id, "--event-endpoint", webhook]
        command += ["--topic-resource-group", "rg-exomi"]
        env = {**os.environ, **self.settings, "AZURE_CLIENT_ID": self.info.admin_client_id}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        say("exomi bootstrap --apply (as the admin): exomi's permissions, roles and Event Grid subscription")
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        for line in done.stdout.splitlines():
            say(line.strip(), indent=2)
        if done.returncode != 0:
            raise RuntimeError(f"exomi bootstrap failed ({done.returncode}): {done.stderr[-2000:]}")

    def _principal(self, name: str) -> dict[str, Any]:
        return self._control(
            "POST", "/principals", {"displayName": name, "type": "ManagedIdentity", "visible": True}
        )

    @staticmethod
    def _easy_auth(principal: dict[str, Any]) -> dict[str, str]:
        return {
            "X-MS-CLIENT-PRINCIPAL-ID": principal["id"],
            "X-MS-CLIENT-PRINCIPAL-NAME": principal["displayName"],
        }

    def _control(self, method: str, path: str, body: Any = None) -> Any:
        response = self.control.request(method, self.info.control_endpoint + path, json=body)
        response.raise_for_status()
        return response.json()

    # ------------------------------------------------------------------ following a request

    def follow(self, location: str, label: str) -> dict[str, Any]:
        """Polls a request's status URL the way Logic Apps does (honouring Retry-After) and shows progress."""
        seen: dict[str, tuple] = {}
        while True:
            response = self.api.get(location)
            document = response.json()
            for step in document.get("steps", []):
                key = (step["status"], step.get("message"))
                if seen.get(step["name"]) != key:
                    seen[step["name"]] = key
                    mark = {"done": "✓", "waiting": "…", "failed": "✗"}.get(step["status"], "·")
                    say(f"{mark} {step['name']:<12} {step.get('message') or ''}", indent=6)
            if response.status_code != 202:
                say(f"{label}: HTTP {response.status_code}, status {document.get('status')}", indent=4)
                return document
            time.sleep(min(float(response.headers.get("Retry-After", "1")), 2.0))

    def wait_for_request(self, target: str, operation: str, after: set[str]) -> str:
        """The id of the new request the tag change made for ``target`` (Event Grid is asynchronous)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            listing = self.api.get("/api/requests", params={"target": target, "operation": operation}).json()
            # Tag requests settle briefly; a newer desired state cancels an older one: take the live one.
            new = [r for r in listing.get("value", []) if r["id"] not in after and r["status"] != "cancelled"]
            if new:
                return new[-1]["id"]
            time.sleep(0.5)
        raise RuntimeError(f"no {operation} request for {target} appeared")

    def requests_for(self, target: str) -> set[str]:
        return {
            r["id"] for r in self.api.get("/api/requests", params={"target": target}).json().get("value", [])
        }

    # ------------------------------------------------------------------ the stories

    def story_tag(self) -> str:
        say("")
        say("Story 1: the admin tags an Automation account")
        started = time.monotonic()
        self.resources.resource_groups.create_or_update(RG, {"location": LOCATION})
        account = self.automation.automation_account.create_or_update(
            RG,
            "ContosoAzAuto1",
            {
                "location": LOCATION,
                "identity": {"type": "SystemAssigned"},
                "properties": {"sku": {"name": "Basic"}},
            },
        )
        account_id = known(account.id, "id of the Automation account")
        identity = known(account.identity, "identity of the Automation account")
        say(
            f"created {account.name} with a system-assigned identity (object id {identity.principal_id})",
            indent=2,
        )
        before = self.requests_for(account_id)
        tags = {"exo-organization": self.organization, "exo-role": "Exchange Recipient Administrator"}
        self.resources.tags.begin_update_at_scope(
            account_id, {"operation": "Merge", "properties": {"tags": tags}}
        ).result()
        say(f"tagged it: {tags}", indent=2)
        request_id = self.wait_for_request(account_id, "provision", before)
        say(f"Event Grid -> exomi: request {request_id}", indent=2)
        result = self.follow(f"/api/requests/{request_id}", "provision")
        self.summary.append(
            {
                "story": "tag an Automation account",
                "target": account.name,
                "status": result.get("status"),
                "seconds": round(time.monotonic() - started, 1),
                "granted": "Exchange.ManageAsApp, Exchange Recipient Administrator, modules, runbook",
            }
        )
        return account_id

    def story_refused_tag(self) -> None:
        say("")
        say("Story 2: somebody whose only right is Tag Contributor tags an Automation account")
        started = time.monotonic()
        account = self.automation.automation_account.create_or_update(
            RG,
            "ContosoAzAuto3",
            {
                "location": LOCATION,
                "identity": {"type": "SystemAssigned"},
                "properties": {"sku": {"name": "Basic"}},
            },
        )
        tagger = ManagedIdentityCredential(client_id=self.tagger["appId"])
        resources = ResourceManagementClient(tagger, self.info.subscription_id, **self.arm)
        account_id = known(account.id, "id of the Automation account")
        tags = {"exo-organization": self.organization, "exo-role": "Exchange Administrator"}
        resources.tags.begin_update_at_scope(
            account_id, {"operation": "Merge", "properties": {"tags": tags}}
        ).result()
        say(f"{self.tagger['displayName']} tagged {account.name}: {tags}", indent=2)
        refusal = self.wait_for_refusal(account_id)
        say(
            f"refused by rule '{refusal['rule']}' (the write was allowed by '{refusal['azure_role']}'):",
            indent=2,
        )
        say(refusal["reason"][:160] + "...", indent=4)
        requests = self.api.get("/api/requests", params={"target": account_id}).json()["value"]
        # (A request made for the account's creator from its creation event, if that event was handled
        # after the tags were written, is cancelled when the refused tag write is handled.)
        requests = [r for r in requests if r["status"] != "cancelled"]
        say(
            f"live requests for {account.name}: {len(requests)}; GET /api/refusals lists the attempt",
            indent=2,
        )
        self.summary.append(
            {
                "story": "Tag Contributor tags an account",
                "target": account.name,
                "status": "refused" if not requests else "granted?!",
                "seconds": round(time.monotonic() - started, 1),
                "granted": "nothing (a refusal record naming the rule)",
            }
        )

    def wait_for_refusal(self, target: str) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            refusals = self.api.get("/api/refusals", params={"target": target}).json().get("value", [])
            if refusals:
                return refusals[-1]
            time.sleep(0.5)
        raise RuntimeError(f"no refusal for {target} appeared")

    def story_logic_apps(self) -> None:
        say("")
        say("Story 3: a Logic-Apps-style client asks for Exchange Administrator; secops approves it")
        started = time.monotonic()
        identity = self.msi.user_assigned_identities.create_or_update(
            RG, "ContosoMI1", {"location": LOCATION}
        )
        account = self.automation.automation_account.create_or_update(
            RG,
            "ContosoAzAuto2",
            {
                "location": LOCATION,
                "identity": {"type": "UserAssigned", "userAssignedIdentities": {identity.id: {}}},
                "properties": {"sku": {"name": "Basic"}},
            },
        )
        say(f"{identity.name}: object id {identity.principal_id}, client id {identity.client_id}", indent=2)
        body = {
            "target": account.id,
            "identity": identity.id,
            "organization": self.organization,
            "role": "Exchange Administrator",
            "channel": "logicapps",
            "external_reference": "CHG0012345",
        }
        response = self.api.post(
            "/api/requests",
            json=body,
            headers={"Idempotency-Key": str(uuid.uuid4()), **self._easy_auth(self.logic_app)},
        )
        say(
            f"POST /api/requests -> {response.status_code}, Location {response.headers.get('Location')}, Retry-After {response.headers.get('Retry-After')}",
            indent=2,
        )
        response.raise_for_status()
        document = response.json()
        say(f"status {document['status']}: {', '.join(document['approval']['reasons'])}", indent=2)
        decision = self.api.post(
            f"/api/requests/{document['id']}/approval",
            json={"decision": "approve", "comment": "CAB-2026-118"},
        )
        decision.raise_for_status()
        say(f"{self.approver['displayName']} approved it: status {decision.json()['status']}", indent=2)
        result = self.follow(response.headers["Location"], "provision")
        content = self.automation.runbook.get_content(
            RG, known(account.name, "name of the Automation account"), "exomi-connect-exchange"
        )
        connect = next(line for line in content.splitlines() if line.startswith("Connect-ExchangeOnline"))
        say(f"runbook: {connect}", indent=4)
        self.summary.append(
            {
                "story": "Logic Apps request, approved",
                "target": account.name,
                "status": result.get("status"),
                "seconds": round(time.monotonic() - started, 1),
                "granted": "Exchange.ManageAsApp, Exchange Administrator (approved by secops), modules, runbook",
                "ticket": result.get("external_reference"),
            }
        )

    def story_revoke(self, target: str) -> None:
        say("")
        say("Story 4: the admin removes the tag; the access is revoked")
        started = time.monotonic()
        before = self.requests_for(target)
        self.resources.tags.begin_update_at_scope(
            target, {"operation": "Delete", "properties": {"tags": {"exo-organization": self.organization}}}
        ).result()
        say("removed the exo-organization tag", indent=2)
        request_id = self.wait_for_request(target, "revoke", before)
        result = self.follow(f"/api/requests/{request_id}", "revoke")
        self.summary.append(
            {
                "story": "remove the tag",
                "target": target.rsplit("/", 1)[-1],
                "status": result.get("status"),
                "seconds": round(time.monotonic() - started, 1),
                "granted": "removed: Exchange.ManageAsApp, Entra role, runbook",
            }
        )

    def report(self) -> bool:
        say("")
        say("Summary")
        width = max(len(row["story"]) for row in self.summary)
        for row in self.summary:
            say(
                f"{row['story']:<{width}}  {row['status']:<9} {row['seconds']:>5}s  {row['target']}: {row['granted']}",
                indent=2,
            )
        expected = ["succeeded", "refused", "succeeded", "revoked"]
        ok = [row["status"] for row in self.summary] == expected
        say("all four stories ended as expected" if ok else "a story did not end as expected (see above)")
        return ok


def main() -> int:
    with ExitStack() as stack:
        demo = Demo(stack)
        target = demo.story_tag()
        demo.story_refused_tag()
        demo.story_logic_apps()
        demo.story_revoke(target)
        ok = demo.report()
    say("stopped the host, Azurite and the emulator; nothing is left running")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
