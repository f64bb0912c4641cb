"""Steps the Automation tests share: the seed procedure's resources, driven through the real
azure-mgmt-automation client, and polling until the emulator's lazy state machines settle."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from azure.mgmt.automation import AutomationClient

from tests.support.emulator import Emulator

T = TypeVar("T")

RG = "ContosoRG"
ACCOUNT = "ContosoAzAuto1"
ORG = "contoso.onmicrosoft.com"
# The seed procedure's runbook, and the same with stop-on-error (what makes a failure fail the job).
SEED_RUNBOOK = (
    f"Connect-ExchangeOnline -ManagedIdentity -Organization {ORG}\nGet-AcceptedDomain | Format-Table Name"
)
STRICT_RUNBOOK = "$ErrorActionPreference = 'Stop'\n" + SEED_RUNBOOK
GALLERY = "https://www.powershellgallery.com/api/v2/package"
# What PowerShell 5.1 needs for Exchange Online's REST connections.
MODULES_51 = {"ExchangeOnlineManagement": "3.5.1", "PackageManagement": "1.4.8.1", "PowerShellGet": "2.2.5"}
TERMINAL_IMPORT = ("Succeeded", "Failed", "Canceled")
TERMINAL_JOB = ("Completed", "Failed", "Stopped", "Suspended")


def raw_response(pipeline_response, deserialized, headers) -> tuple[Any, Any]:
    """``cls=`` for SDK calls whose raw HTTP response a test inspects."""
    return pipeline_response.http_response, deserialized


def body_of(raw: tuple[Any, Any]) -> dict[str, Any]:
    return json.loads(raw[0].text())


def until(fetch: Callable[[], T], done: Callable[[T], bool], timeout: float = 15.0) -> T:
    """Calls ``fetch`` until ``done`` holds for its result (the emulator advances state on reads)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def create_account(
    emulator: Emulator,
    client: AutomationClient | None = None,
    *,
    name: str = ACCOUNT,
    identity: dict[str, Any] | None = None,
) -> Any:
    emulator.resources().resource_groups.create_or_update(RG, {"location": "westus"})
    client = client or emulator.automation()
    body: dict[str, Any] = {"location": "westus", "properties": {"sku": {"name": "Basic"}}}
    body["identity"] = identity if identity is not None else {"type": "SystemAssigned"}
    return client.automation_account.create_or_update(RG, name, body)


def gallery_link(name: str, version: str) -> dict[str, Any]:
    return {"properties": {"contentLink": {"uri": f"{GALLERY}/{name}/{version}"}}}


def import_modules(
    client: AutomationClient, modules: dict[str, str], account: str = ACCOUNT
) -> dict[str, Any]:
    """Imports 5.1 modules side by side and waits for each import to finish."""
    for name, version in modules.items():
        client.module.create_or_update(RG, account, name, gallery_link(name, version))
    return {
        name: until(
            lambda n=name: client.module.get(RG, account, n),
            lambda m: m.provisioning_state in TERMINAL_IMPORT,
        )
        for name in modules
    }


def publish_runbook(
    client: AutomationClient,
    name: str,
    content: str,
    *,
    runbook_type: str = "PowerShell",
    runtime: str | None = None,
    account: str = ACCOUNT,
) -> Any:
    properties: dict[str, Any] = {"runbookType": runbook_type}
    if runtime:
        properties["runtimeEnvironment"] = runtime
    client.runbook.create_or_update(RG, account, name, {"location": "westus", "properties": properties})
    client.runbook_draft.begin_replace_content(RG, account, name, content).result()
    client.runbook.begin_publish(RG, account, name).result()
    return client.runbook.get(RG, account, name)


def start_job(
    client: AutomationClient, runbook: str, parameters: dict[str, str] | None = None, account: str = ACCOUNT
) -> str:
    job_name = str(uuid.uuid4())
    body = {"properties": {"runbook": {"name": runbook}, "parameters": parameters or {}, "runOn": ""}}
    client.job.create(RG, account, job_name, body)
    return job_name


def finished_job(client: AutomationClient, job_name: str, account: str = ACCOUNT) -> Any:
    return until(lambda: client.job.get(RG, account, job_name), lambda j: j.status in TERMINAL_JOB)


def run_runbook(client: AutomationClient, runbook: str, parameters: dict[str, str] | None = None) -> Any:
    return finished_job(client, start_job(client, runbook, parameters))


def grant_exchange(
    emulator: Emulator,
    principal_id: str,
    *,
    app_role: str | None = "Exchange.ManageAsApp",
    directory_role: str | None = "Exchange Administrator",
    backdate: bool = True,
) -> None:
    """The procedure's Graph steps (app role + Entra role), through the control API."""
    emulator.ctl(
        "POST",
        "/grants",
        {
            "principal_id": principal_id,
            "app_role": app_role,
            "directory_role": directory_role,
            "backdate": backdate,
        },
    )
