"""Hybrid Runbook Worker groups of an Automation account and their workers (machines).

Groups (``{AA}/hybridRunbookWorkerGroups/{name}``): shapes from azure-rest-api-specs
``Microsoft.Automation/stable/2023-11-01/hybridRunbookWorkerGroup.json`` and its examples
(getHybridRunbookWorkerGroup.json): ``groupType`` is "User" for groups people create, ``credential`` is
optional. Workers (``…/{group}/hybridRunbookWorkers/{id}``): ``hybridRunbookWorker.json`` (2021-06-22 and
later) and its examples (putHybridRunbookWorker.json, moveHybridRunbookWorker.json): an extension-based
("HybridV2") worker names its machine in ``vmResourceId``. Older api-versions' group shapes (flat, the
workers inline, no PUT before 2021-06-22) are api_versions.SHAPES' and the checks in ``put_group``.

A job started with ``runOn`` a group runs on one of its workers (automation_jobs.py): the first registered
worker whose machine is an emulated VM that is running. There it uses the machine's modules, and the
identity Microsoft documents for hybrid jobs (``worker_host``). Sources in emulator/README.md.
"""

from __future__ import annotations

import re
import time
from typing import Any

from aiohttp import web

from emulator.arm import api_versions
from emulator.arm.automation_accounts import account_guid
from emulator.arm.automation_common import (
    AA,
    ACCOUNT_TYPE,
    aa_time,
    check_name,
    child_not_found,
    object_property,
    require_parent_account,
    route_args,
)
from emulator.arm.compute import VM_TYPE, identity_holder
from emulator.arm.identity import linked_identities
from emulator.arm.router import ArmContext, ArmRouter, arm_json, paged
from emulator.http import ArmError
from emulator.powershell import ScriptHost
from emulator.tenant import ArmResource, Tenant

GROUP_TYPE = f"{ACCOUNT_TYPE}/hybridRunbookWorkerGroups"
JSON_TYPE = "Microsoft.Automation/AutomationAccounts/HybridRunbookWorkerGroups"
WORKER_TYPE = f"{GROUP_TYPE}/hybridRunbookWorkers"
WORKER_JSON_TYPE = f"{JSON_TYPE}/HybridRunbookWorkers"
ARC_MACHINE_TYPE = "Microsoft.HybridCompute/machines"
# vmResourceId: an Azure VM or an Arc-enabled server (the two machine kinds the Hybrid Worker extension
# runs on; the spec only says "Azure Resource Manager Id for a virtual machine").
MACHINE_ID_RE = re.compile(
    r"^/subscriptions/[0-9a-fA-F-]{36}/resourceGroups/[^/]+/providers/"
    r"(Microsoft\.Compute/virtualMachines|Microsoft\.HybridCompute/machines)/[^/]+$",
    re.IGNORECASE,
)
# Naming rules page: 1-128 characters, none of <>*%&:\?.+/ and no control characters (guess: the
# emulator takes the letters, digits, '-', '_' and spaces people use).
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _-]{0,127}$")


def find_group(tenant: Tenant, account: ArmResource, name: str) -> ArmResource | None:
    return tenant.get_resource(f"{account.id}/hybridRunbookWorkerGroups/{name}")


def group_json(tenant: Tenant, group: ArmResource) -> dict[str, Any]:
    properties: dict[str, Any] = {"groupType": "User"}
    if group.properties.get("credential"):
        properties["credential"] = group.properties["credential"]
    # The machines inline, as 2021-06-22 and older versions show them (HybridRunbookWorker of 2015-10-31's
    # hybridRunbookWorkerGroup.json; newer versions drop it, api_versions.SHAPES). That they list
    # extension-based workers too is a *guess*.
    properties["hybridRunbookWorkers"] = [_legacy_worker(tenant, w) for w in workers_of(tenant, group)]
    return {
        "id": group.id,
        "name": group.name,
        "type": JSON_TYPE,
        "properties": properties,
        "systemData": {
            "createdBy": group.created_by,
            "createdByType": "Application",
            "createdAt": aa_time(group.created_at),
            "lastModifiedBy": group.modified_by,
            "lastModifiedByType": "Application",
            "lastModifiedAt": aa_time(group.modified_at),
        },
    }


async def _credential(ctx: ArmContext) -> dict[str, Any] | None:
    properties = object_property(await ctx.json_object(), "properties")
    credential = object_property(properties, "credential")
    return {"name": credential["name"]} if isinstance(credential.get("name"), str) else None


def _require_group(ctx: ArmContext) -> tuple[ArmResource, ArmResource]:
    account = require_parent_account(ctx, "hybridRunbookWorkerGroups")
    name = ctx.params["groupName"]
    group = find_group(ctx.tenant, account, name)
    if group is None:
        raise child_not_found(ctx, account, "hybridRunbookWorkerGroups", name)
    return account, group


async def put_group(ctx: ArmContext) -> web.Response:
    if ctx.api_version in api_versions.AUTOMATION_AGENT_WORKER_GROUPS:
        # The agent-based versions have no PUT: agents joined groups by registering (*guess*: the answer).
        raise ArmError(405, "MethodNotAllowed", "The requested resource does not support http method 'PUT'.")
    account = require_parent_account(ctx, "hybridRunbookWorkerGroups")
    name = ctx.params["groupName"]
    check_name(name, NAME_RE, "hybrid runbook worker group", "Use letters, digits, spaces, '-' and '_'.")
    credential = await _credential(ctx)
    existing = find_group(ctx.tenant, account, name)
    if existing is not None:
        existing.properties["credential"] = credential
        existing.modified_by = ctx.caller.principal.app_id
        return arm_json(group_json(ctx.tenant, existing), 200)
    group = ArmResource(
        id=f"{account.id}/hybridRunbookWorkerGroups/{name}",
        type=GROUP_TYPE,
        name=name,
        properties={"credential": credential},
        created_by=ctx.caller.principal.app_id,
        modified_by=ctx.caller.principal.app_id,
    )
    ctx.tenant.put_resource(group)
    created = 200 if ctx.api_version in api_versions.AUTOMATION_HYBRID_PUT_200 else 201
    return arm_json(group_json(ctx.tenant, group), created)


async def get_group(ctx: ArmContext) -> web.Response:
    return arm_json(group_json(ctx.tenant, _require_group(ctx)[1]))


async def patch_group(ctx: ArmContext) -> web.Response:
    _, group = _require_group(ctx)
    group.properties["credential"] = await _credential(ctx)
    group.modified_by = ctx.caller.principal.app_id
    return arm_json(group_json(ctx.tenant, group))


async def delete_group(ctx: ArmContext) -> web.Response:
    _, group = _require_group(ctx)
    ctx.tenant.delete_resource_tree(group.id)
    return web.Response(status=200)  # the spec lists only 200


async def list_groups(ctx: ArmContext) -> web.Response:
    account = require_parent_account(ctx, "hybridRunbookWorkerGroups")
    groups = ctx.tenant.children(f"{account.id}/hybridRunbookWorkerGroups")
    return paged(ctx, [group_json(ctx.tenant, group) for group in groups])


# --------------------------------------------------------------------------------------------------
# Workers


def workers_of(tenant: Tenant, group: ArmResource) -> list[ArmResource]:
    """The group's workers in the order they registered."""
    return sorted(tenant.children(f"{group.id}/hybridRunbookWorkers"), key=lambda w: w.created_at)


def live_machine(tenant: Tenant, worker: ArmResource) -> ArmResource | None:
    """The worker's machine when it can take a job: an emulated Azure VM that is running. A worker whose
    VM was deleted or stopped stays registered and takes nothing (*guess*); Arc-enabled servers are not
    emulated, so a worker on one never takes a job either."""
    vm = tenant.get_resource(worker.properties["vmResourceId"])
    if vm is None or vm.type != VM_TYPE or vm.state.get("power") != "running":
        return None
    return vm


def pick_worker(tenant: Tenant, group: ArmResource, now: float) -> tuple[ArmResource, ArmResource] | None:
    """The worker that takes the group's next job, and its VM: Azure gives it to "one of the workers in
    that group"; the emulator takes the first registered live one, so tests are deterministic."""
    for worker in workers_of(tenant, group):
        vm = live_machine(tenant, worker)
        if vm is not None:
            worker.state["last_seen"] = now
            return worker, vm
    return None


def worker_host(tenant: Tenant, account: ArmResource, vm: ArmResource, powershell: str) -> ScriptHost:
    """What a hybrid job runs with on ``vm`` ("Run runbooks on a Hybrid Runbook Worker", Use runbook
    authentication with managed identities): the machine's modules (jobs run as Local System, so what is
    installed for all users, and Install-Module installs onto the machine); and the Automation account's
    system-assigned identity when the account has one, never its user-assigned identities; only an
    account without a managed identity lets the job use the VM's own identities."""
    modules = vm.state["modules"]
    identity = account.identity
    common = {
        "description": f"hybrid worker '{vm.name}' of Automation account '{account.name}'",
        "modules": dict(modules),
        "powershell": powershell,
        "install_module": lambda name, version: modules.__setitem__(name.lower(), version),
    }
    if identity is not None and (identity.system_principal_id or identity.user_assigned):
        return ScriptHost(
            automation_account_guid=account_guid(account),
            system_principal_id=identity.system_principal_id,
            system_client_id=identity.system_client_id,
            user_assigned={},
            **common,
        )
    holder = identity_holder(tenant, vm)
    own = holder.identity
    return ScriptHost(
        automation_account_guid=None,  # the VM's identities come from IMDS
        system_principal_id=own.system_principal_id if own else None,
        system_client_id=own.system_client_id if own else None,
        user_assigned=linked_identities(tenant, holder),
        **common,
    )


def worker_json(tenant: Tenant, worker: ArmResource) -> dict[str, Any]:
    vm_id = worker.properties["vmResourceId"]
    last_seen = worker.state.get("last_seen", worker.created_at)
    vm = live_machine(tenant, worker)
    if vm is not None:  # a live machine sends heartbeats
        last_seen = worker.state["last_seen"] = max(last_seen, worker.modified_at, time.time())
    return {
        "id": worker.id,
        "name": worker.name,
        "type": WORKER_JSON_TYPE,
        "properties": {
            "ip": worker.properties["ip"],
            "registeredDateTime": aa_time(worker.created_at),
            "lastSeenDateTime": aa_time(last_seen),
            "vmResourceId": vm_id,
            "workerName": vm_id.rsplit("/", 1)[-1],
            "workerType": "HybridV2",
        },
        "systemData": {
            "createdBy": worker.created_by,
            "createdByType": "Application",
            "createdAt": aa_time(worker.created_at),
            "lastModifiedBy": worker.modified_by,
            "lastModifiedByType": "Application",
            "lastModifiedAt": aa_time(worker.modified_at),
        },
    }


def _legacy_worker(tenant: Tenant, worker: ArmResource) -> dict[str, Any]:
    properties = worker_json(tenant, worker)["properties"]
    return {
        "name": properties["workerName"],
        "ip": properties["ip"],
        "registrationTime": properties["registeredDateTime"],
        "lastSeenDateTime": properties["lastSeenDateTime"],
    }


def _worker_path(group: ArmResource, worker_id: str) -> str:
    return f"{group.id}/hybridRunbookWorkers/{worker_id}"


def _require_worker(ctx: ArmContext) -> tuple[ArmResource, ArmResource, ArmResource]:
    account, group = _require_group(ctx)
    worker_id = ctx.params["workerId"]
    worker = ctx.tenant.get_resource(_worker_path(group, worker_id))
    if worker is None:
        raise child_not_found(
            ctx, account, f"hybridRunbookWorkerGroups/{group.name}/hybridRunbookWorkers", worker_id
        )
    return account, group, worker


async def put_worker(ctx: ArmContext) -> web.Response:
    _, group = _require_group(ctx)
    worker_id = ctx.params["workerId"]
    check_name(worker_id, NAME_RE, "hybrid runbook worker", "A worker id is usually a GUID.")
    properties = object_property(await ctx.json_object(), "properties", required=True)
    vm_id = properties.get("vmResourceId")
    if not isinstance(vm_id, str) or not MACHINE_ID_RE.match(vm_id):
        # *guess*: the message; the spec requires properties and documents vmResourceId as a VM's id.
        raise ArmError(
            400,
            "BadRequest",
            "The 'properties.vmResourceId' property must be the resource id of an Azure virtual machine "
            f"({VM_TYPE}) or an Azure Arc-enabled server ({ARC_MACHINE_TYPE}).",
        )
    existing = ctx.tenant.get_resource(_worker_path(group, worker_id))
    if existing is not None:
        existing.properties["vmResourceId"] = vm_id
        existing.modified_by = ctx.caller.principal.app_id
        existing.modified_at = time.time()
        return arm_json(worker_json(ctx.tenant, existing), 200)
    worker = ArmResource(
        id=_worker_path(group, worker_id),
        type=WORKER_TYPE,
        name=worker_id,
        # The machine's private address as the extension reports it (*guess*: the emulator has no NICs).
        properties={"vmResourceId": vm_id, "ip": f"10.0.0.{4 + len(workers_of(ctx.tenant, group))}"},
        created_by=ctx.caller.principal.app_id,
        modified_by=ctx.caller.principal.app_id,
    )
    ctx.tenant.put_resource(worker)
    created = 200 if ctx.api_version in api_versions.AUTOMATION_HYBRID_PUT_200 else 201
    return arm_json(worker_json(ctx.tenant, worker), created)


async def get_worker(ctx: ArmContext) -> web.Response:
    return arm_json(worker_json(ctx.tenant, _require_worker(ctx)[2]))


async def list_workers(ctx: ArmContext) -> web.Response:
    _, group = _require_group(ctx)
    return paged(ctx, [worker_json(ctx.tenant, w) for w in workers_of(ctx.tenant, group)])


async def delete_worker(ctx: ArmContext) -> web.Response:
    _, group = _require_group(ctx)
    worker = ctx.tenant.get_resource(_worker_path(group, ctx.params["workerId"]))
    if worker is None:
        return web.Response(status=204)  # the spec's "nothing to delete" answer
    ctx.tenant.delete_resource_tree(worker.id)
    return web.Response(status=200)


async def move_worker(ctx: ArmContext) -> web.Response:
    account, group, worker = _require_worker(ctx)
    body = await ctx.json_object()
    target_name = body.get("hybridRunbookWorkerGroupName")
    if not isinstance(target_name, str) or not target_name:
        raise ArmError(400, "BadRequest", "The 'hybridRunbookWorkerGroupName' property is required.")
    target = find_group(ctx.tenant, account, target_name)
    if target is None:
        raise child_not_found(ctx, account, "hybridRunbookWorkerGroups", target_name)
    if target.id.lower() != group.id.lower():
        ctx.tenant.delete_resource_tree(worker.id)
        worker.id = _worker_path(target, worker.name)
        worker.modified_by = ctx.caller.principal.app_id
        worker.modified_at = time.time()
        ctx.tenant.put_resource(worker)
    return web.Response(status=200)  # the spec's example: 200, no body


def register(router: ArmRouter) -> None:
    collection = f"{AA}/hybridRunbookWorkerGroups"
    item = collection + "/{groupName}"
    args = route_args("automationAccounts/hybridRunbookWorkerGroups")
    action = "Microsoft.Automation/automationAccounts/hybridRunbookWorkerGroups"
    router.add("PUT", item, put_group, action=f"{action}/write", **args)
    router.add("GET", item, get_group, action=f"{action}/read", **args)
    router.add("PATCH", item, patch_group, action=f"{action}/write", **args)
    router.add("DELETE", item, delete_group, action=f"{action}/delete", **args)
    router.add("GET", collection, list_groups, action=f"{action}/read", **args)
    workers = item + "/hybridRunbookWorkers"
    worker = workers + "/{workerId}"
    worker_args = route_args("automationAccounts/hybridRunbookWorkerGroups/hybridRunbookWorkers")
    worker_action = f"{action}/hybridRunbookWorkers"
    router.add("PUT", worker, put_worker, action=f"{worker_action}/write", **worker_args)
    router.add("GET", worker, get_worker, action=f"{worker_action}/read", **worker_args)
    router.add("DELETE", worker, delete_worker, action=f"{worker_action}/delete", **worker_args)
    router.add("GET", workers, list_workers, action=f"{worker_action}/read", **worker_args)
    router.add("POST", worker + "/move", move_worker, action=f"{worker_action}/move/action", **worker_args)
