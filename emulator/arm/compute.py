"""Microsoft.Compute virtual machines: create/read/update/delete, power state, and Run Command.

A VM is a Windows machine with Windows PowerShell 5.1 and its inbox PackageManagement/PowerShellGet
1.0.0.1 (too old for ExchangeOnlineManagement's REST connections), or a Linux machine (Ubuntu; its image,
``osDisk.osType`` or ``linuxConfiguration`` says so) with no PowerShell until a script installs ``pwsh``.
``RunPowerShellScript`` runs on Windows through ``emulator.powershell.run_script``, ``RunShellScript`` on
Linux through ``emulator.bash.run_bash`` (whose ``pwsh`` runs the same evaluator as PowerShell 7), each on
a host built from the VM: its system-assigned identity, the user-assigned identities linked to it, and the
modules installed on it. ``Install-Module`` in a script installs onto the VM, so later Run Commands see the
module; so does an installed pwsh.

Long-running operations answer as the compute RP does: the initial response carries
``Azure-AsyncOperation`` (``…/locations/{loc}/operations/{id}`` → ``{"status": "InProgress|Succeeded"}``),
and actions also carry ``Location`` (the same URL with ``monitor=true`` → 202 until done, then the
result). Progress is lazy: an operation is done once its timing has elapsed, and a Run Command's script
is evaluated (at its completion time) the first time anyone looks at it afterwards.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from emulator.arm import api_versions, tracked
from emulator.arm.identity import apply_identity, identity_json, linked_identities
from emulator.arm.router import (
    ArmContext,
    ArmRouter,
    arm_json,
    paged,
    require_resource_group,
    validate_tags,
)
from emulator.bash import LinuxMachine, ShellOutcome, run_bash
from emulator.http import ArmError
from emulator.powershell import ScriptHost, ScriptOutcome, run_script
from emulator.tenant import ArmResource, Tenant, iso

VM_TYPE = "Microsoft.Compute/virtualMachines"
# What a fresh Windows Server image has: Windows PowerShell 5.1's inbox modules.
INBOX_MODULES = {"packagemanagement": "1.0.0.1", "powershellget": "1.0.0.1"}
# What PowerShell 7 ships with (its own PackageManagement and PowerShellGet), once pwsh is installed.
PWSH_INBOX_MODULES = {"packagemanagement": "1.4.8.1", "powershellget": "2.2.5"}
# Image publishers whose marketplace images are Linux (the image sets osDisk.osType).
LINUX_PUBLISHERS = {"canonical", "redhat", "suse", "debian", "openlogic", "microsoftcblmariner", "oracle"}
# Run Command's built-in script commands and the OS each one is for.
COMMAND_OS = {"RunPowerShellScript": "Windows", "RunShellScript": "Linux"}
# Run Command returns only the last 4096 bytes of each output stream.
OUTPUT_LIMIT = 4096
NAME_RE = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9_])?$")
# Properties the service computes; a request's values for them are ignored.
READ_ONLY_PROPERTIES = {"vmId", "provisioningState", "instanceView", "timeCreated"}
POWER_TEXT = {
    "running": "VM running",
    "starting": "VM starting",
    "stopping": "VM stopping",
    "stopped": "VM stopped",
    "deallocating": "VM deallocating",
    "deallocated": "VM deallocated",
}
# Power action -> (state while it runs, final state).
POWER_ACTIONS = {
    "start": ("starting", "running"),
    "powerOff": ("stopping", "stopped"),
    "deallocate": ("deallocating", "deallocated"),
}


@dataclass
class VmOperation:
    """A compute long-running operation; it outlives the VM (a deletion is polled after the VM is gone)."""

    id: str
    kind: str  # "create" | "update" | "delete" | "start" | "powerOff" | "deallocate" | "runCommand"
    vm_id: str
    started_at: float
    done_at: float
    script: str | None = None  # Run Command only
    command_id: str | None = None  # Run Command only
    result: dict[str, Any] | None = None  # RunCommandResult, once the script has run
    streams: tuple[str, str, int] | None = None  # (stdout, stderr, exit code), once the script has run
    error: dict[str, str] | None = None

    def done(self, now: float) -> bool:
        return now >= self.done_at


# --------------------------------------------------------------------------------------------------
# Lookups and state


def _vm_id(ctx: ArmContext, rg_id: str) -> str:
    return tracked.resource_id(ctx, rg_id, VM_TYPE, "vmName")


def _get_vm(ctx: ArmContext) -> ArmResource:
    vm = tracked.require(ctx, VM_TYPE, "vmName")
    settle_run(ctx.tenant, vm)
    return vm


def _start_operation(
    ctx: ArmContext, vm: ArmResource, kind: str, duration: float, **extra: Any
) -> VmOperation:
    now = time.time()
    operation = VmOperation(str(uuid.uuid4()), kind, vm.id, now, now + duration, **extra)
    ctx.tenant.operations[operation.id] = operation
    return operation


def _operation_headers(ctx: ArmContext, vm: ArmResource, operation: VmOperation, *, location: bool) -> dict:
    path = (
        f"/subscriptions/{ctx.subscription_id}/providers/Microsoft.Compute/locations/{vm.location}"
        f"/operations/{operation.id}?api-version={ctx.api_version}"
    )
    headers = {"Azure-AsyncOperation": ctx.absolute(path)}
    if location:
        headers["Location"] = ctx.absolute(path + "&monitor=true")
    return headers


def _provisioning_state(vm: ArmResource, now: float) -> str:
    if now < vm.state.get("busy_until", 0):
        return vm.state["busy_state"]
    return "Succeeded"


def _power_state(vm: ArmResource, now: float) -> str:
    if now < vm.state.get("power_until", 0):
        return vm.state["power_transition"]
    return vm.state["power"]


# --------------------------------------------------------------------------------------------------
# JSON


def os_type(vm: ArmResource) -> str:
    return os_type_of(vm.properties)


def os_type_of(properties: dict[str, Any]) -> str:
    """The OS of normalized VM properties (or of a scale set's normalized VM profile)."""
    return str(properties["storageProfile"]["osDisk"]["osType"])


def identity_holder(tenant: Tenant, vm: ArmResource) -> ArmResource:
    """Whose identity a machine uses: a scale set's instance (a Uniform instance, or a Flexible set's VM)
    uses its set's, one principal for every instance; any other VM its own."""
    scale_set = vm.state.get("scale_set")
    holder = tenant.get_resource(scale_set) if scale_set else None
    return holder or vm


def _instance_view(vm: ArmResource, now: float) -> dict[str, Any]:
    provisioning = _provisioning_state(vm, now)
    power = _power_state(vm, now)
    linux = os_type(vm) == "Linux"
    return {
        "computerName": vm.properties["osProfile"]["computerName"],
        "osName": "ubuntu" if linux else "Windows Server 2022 Datacenter",
        "osVersion": "22.04" if linux else "Microsoft Windows NT 10.0.20348.0",
        "vmAgent": {
            "vmAgentVersion": "2.9.1.1" if linux else "2.7.41491.1102",
            "statuses": [
                {
                    "code": "ProvisioningState/succeeded",
                    "level": "Info",
                    "displayStatus": "Ready",
                    "message": "GuestAgent is running and processing the extensions.",
                    "time": iso(now),
                }
            ],
        },
        "hyperVGeneration": "V2",
        "statuses": [
            {
                "code": f"ProvisioningState/{provisioning.lower()}",
                "level": "Info",
                "displayStatus": "Provisioning succeeded"
                if provisioning == "Succeeded"
                else f"Provisioning {provisioning.lower()}",
                "time": iso(vm.modified_at),
            },
            {"code": f"PowerState/{power}", "level": "Info", "displayStatus": POWER_TEXT[power]},
        ],
    }


def vm_json(tenant: Tenant, vm: ArmResource, *, with_instance_view: bool = False) -> dict[str, Any]:
    now = time.time()
    body: dict[str, Any] = {
        "id": vm.id,
        "name": vm.name,
        "type": VM_TYPE,
        "location": vm.location,
    }
    if vm.tags:
        body["tags"] = vm.tags
    holder = identity_holder(tenant, vm)
    if holder.identity is not None:
        body["identity"] = identity_json(tenant, holder)
    body["etag"] = f'"{vm.state["version"]}"'
    properties = {
        **vm.properties,
        "provisioningState": _provisioning_state(vm, now),
        "timeCreated": iso(vm.created_at),
    }
    if with_instance_view:
        properties["instanceView"] = _instance_view(vm, now)
    body["properties"] = properties
    return body


# --------------------------------------------------------------------------------------------------
# Request validation


def _invalid(message: str, target: str) -> ArmError:
    return ArmError(400, "InvalidParameter", message, target=target)


def _normalized_properties(vm_name: str, properties: Any, current_os: str | None = None) -> dict[str, Any]:
    """The request's properties as the service stores and returns them: defaults filled in, secrets
    (adminPassword, customData) dropped. A body that says nothing about the OS keeps ``current_os``."""
    if not isinstance(properties, dict):
        raise _invalid("Required parameter 'properties' is missing (null).", "properties")
    result = {k: v for k, v in properties.items() if k not in READ_ONLY_PROPERTIES}
    hardware = result.get("hardwareProfile")
    if not isinstance(hardware, dict) or not hardware.get("vmSize"):
        raise _invalid(
            "Required parameter 'hardwareProfile.vmSize' is missing (null).", "hardwareProfile.vmSize"
        )

    storage = dict(result.get("storageProfile") or {})
    os_disk = dict(storage.get("osDisk") or {})
    os_profile = dict(result.get("osProfile") or {})
    publisher = str((storage.get("imageReference") or {}).get("publisher", "")).lower()
    named = str(os_disk.get("osType", "")).capitalize() or None
    if named not in (None, "Windows", "Linux"):
        raise _invalid(
            f"The value '{os_disk['osType']}' of parameter 'osDisk.osType' is invalid.", "osDisk.osType"
        )
    says_nothing = (
        named is None
        and not publisher
        and not {"linuxConfiguration", "windowsConfiguration"} & set(os_profile)
    )
    linux = (
        named == "Linux"
        or "linuxConfiguration" in os_profile
        or (named is None and publisher in LINUX_PUBLISHERS)
        or (says_nothing and current_os == "Linux")
    )
    if linux and (named == "Windows" or "windowsConfiguration" in os_profile):
        raise _invalid(
            "The virtual machine cannot have both Windows and Linux settings: osType, windowsConfiguration and "
            "linuxConfiguration must agree.",
            "osProfile",
        )
    os_disk["osType"] = "Linux" if linux else "Windows"
    os_disk.setdefault("name", f"{vm_name}_OsDisk_1_{uuid.uuid4().hex}")
    os_disk.setdefault("createOption", "FromImage")
    os_disk.setdefault("caching", "ReadWrite")
    os_disk.setdefault("managedDisk", {"storageAccountType": "Premium_LRS"})
    storage["osDisk"] = os_disk
    storage.setdefault("dataDisks", [])
    result["storageProfile"] = storage

    for secret in ("adminPassword", "customData"):
        os_profile.pop(secret, None)
    os_profile.setdefault("computerName", vm_name[:15])
    if linux:
        os_profile["linuxConfiguration"] = {
            "disablePasswordAuthentication": False,
            "provisionVMAgent": True,
            **(os_profile.get("linuxConfiguration") or {}),
        }
    else:
        os_profile["windowsConfiguration"] = {
            "provisionVMAgent": True,
            "enableAutomaticUpdates": True,
            **(os_profile.get("windowsConfiguration") or {}),
        }
    os_profile.setdefault("secrets", [])
    os_profile.setdefault("allowExtensionOperations", True)
    os_profile.setdefault("requireGuestProvisionSignal", True)
    result["osProfile"] = os_profile
    return result


def _merge_patch(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """JSON merge patch (RFC 7396), as PATCH on a VM applies its body."""
    result = dict(current)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _merge_patch(result[key], value)
        else:
            result[key] = value
    return result


# --------------------------------------------------------------------------------------------------
# Virtual machines


async def create_or_update(ctx: ArmContext) -> web.Response:
    rg_id = require_resource_group(ctx)
    body = await ctx.json_object()
    name = ctx.params["vmName"]
    if not NAME_RE.match(name):
        raise _invalid(
            f"Virtual machine name '{name}' is invalid. It can contain letters, numbers, underscores, periods and "
            "hyphens, must start with a letter, number or underscore, end with a letter, number or underscore, "
            "and be at most 64 characters long.",
            "vmName",
        )
    location = tracked.require_location(body)
    tags = validate_tags(body.get("tags"))
    existing = ctx.tenant.get_resource(_vm_id(ctx, rg_id))
    tracked.require_same_location(ctx, existing, name, location)
    properties = _normalized_properties(name, body.get("properties"), os_type(existing) if existing else None)
    if existing is not None and os_type(existing) != properties["storageProfile"]["osDisk"]["osType"]:
        raise _invalid("Changing property 'osDisk.osType' is not allowed.", "osDisk.osType")
    linux = properties["storageProfile"]["osDisk"]["osType"] == "Linux"
    vm = existing or ArmResource(
        id=_vm_id(ctx, rg_id),
        type=VM_TYPE,
        name=name,
        location=location,
        created_by=ctx.caller.principal.app_id,
        # A Linux image has no PowerShell (and so no modules) until a script installs pwsh.
        state={
            "version": 0,
            "power": "running",
            "modules": {} if linux else dict(INBOX_MODULES),
            "pwsh": None,
        },
    )
    apply_identity(ctx, vm, body.get("identity"), patch=False)
    properties["vmId"] = existing.properties["vmId"] if existing else str(uuid.uuid4())
    vm.properties = properties
    vm.tags = tags
    tracked.touch(vm, ctx)
    vm.state["version"] += 1
    kind = "update" if existing else "create"
    operation = _start_operation(ctx, vm, kind, ctx.runtime.timings.lro)
    vm.state.update(busy_state="Updating" if existing else "Creating", busy_until=operation.done_at)
    ctx.tenant.put_resource(vm)
    return arm_json(
        vm_json(ctx.tenant, vm),
        200 if existing else 201,
        headers=_operation_headers(ctx, vm, operation, location=False),
    )


async def get_vm(ctx: ArmContext) -> web.Response:
    vm = _get_vm(ctx)
    expand = ctx.request.query.get("$expand", "")
    return arm_json(vm_json(ctx.tenant, vm, with_instance_view=expand.lower() == "instanceview"))


async def instance_view(ctx: ArmContext) -> web.Response:
    return arm_json(_instance_view(_get_vm(ctx), time.time()))


async def update_vm(ctx: ArmContext) -> web.Response:
    vm = _get_vm(ctx)
    body = await ctx.json_object()
    tags = validate_tags(body["tags"]) if "tags" in body else vm.tags
    properties = vm.properties
    if body.get("properties") is not None:
        if not isinstance(body["properties"], dict):
            raise _invalid("The parameter 'properties' must be an object.", "properties")
        merged = _merge_patch(vm.properties, body["properties"])
        properties = {**_normalized_properties(vm.name, merged, os_type(vm)), "vmId": vm.properties["vmId"]}
        if properties["storageProfile"]["osDisk"]["osType"] != os_type(vm):
            raise _invalid("Changing property 'osDisk.osType' is not allowed.", "osDisk.osType")
    apply_identity(ctx, vm, body.get("identity"), patch=True)
    vm.tags, vm.properties = tags, properties
    tracked.touch(vm, ctx)
    vm.state["version"] += 1
    operation = _start_operation(ctx, vm, "update", ctx.runtime.timings.lro)
    vm.state.update(busy_state="Updating", busy_until=operation.done_at)
    return arm_json(vm_json(ctx.tenant, vm), headers=_operation_headers(ctx, vm, operation, location=False))


async def delete_vm(ctx: ArmContext) -> web.Response:
    vm = tracked.find(ctx, VM_TYPE, "vmName")
    if vm is None:
        return tracked.already_deleted(ctx)
    operation = _start_operation(ctx, vm, "delete", ctx.runtime.timings.lro)
    # The VM (and its system-assigned identity) is gone at once; the operation reports progress.
    ctx.tenant.delete_resource_tree(vm.id)
    return web.Response(status=202, headers=_operation_headers(ctx, vm, operation, location=True))


# VirtualMachines_List / ListAll accept one $filter: the VMs of a Flexible scale set.
_SCALE_SET_FILTER = re.compile(
    r"^\s*'virtualMachineScaleSet/id'\s+eq\s+'?(?P<id>[^'\s]+)'?\s*$", re.IGNORECASE
)


def _filtered(ctx: ArmContext, vms: list[ArmResource]) -> list[dict[str, Any]]:
    expression = ctx.request.query.get("$filter")
    if expression is not None:
        match = _SCALE_SET_FILTER.match(expression)
        if match is None:
            raise _invalid(
                "The $filter is invalid: the only supported filter is 'virtualMachineScaleSet/id' eq <scale set id>.",
                "$filter",
            )
        wanted = match["id"].lower()
        vms = [vm for vm in vms if str(vm.state.get("scale_set", "")).lower() == wanted]
    return [vm_json(ctx.tenant, vm) for vm in vms]


async def list_by_resource_group(ctx: ArmContext) -> web.Response:
    return paged(ctx, _filtered(ctx, tracked.in_resource_group(ctx, VM_TYPE)))


async def list_by_subscription(ctx: ArmContext) -> web.Response:
    return paged(ctx, _filtered(ctx, tracked.in_subscription(ctx, VM_TYPE)))


def _power_action(kind: str):
    transition, final = POWER_ACTIONS[kind]

    async def handler(ctx: ArmContext) -> web.Response:
        vm = _get_vm(ctx)
        operation = _start_operation(ctx, vm, kind, ctx.runtime.timings.lro)
        vm.state.update(power=final, power_transition=transition, power_until=operation.done_at)
        return web.Response(status=202, headers=_operation_headers(ctx, vm, operation, location=True))

    return handler


# --------------------------------------------------------------------------------------------------
# Run Command


def _script_host(tenant: Tenant, vm: ArmResource, powershell: str = "5.1") -> ScriptHost:
    modules = vm.state["modules"]
    holder = identity_holder(tenant, vm)
    identity = holder.identity
    return ScriptHost(
        description=f"virtual machine '{vm.name}'",
        powershell=powershell,
        automation_account_guid=None,
        system_principal_id=identity.system_principal_id if identity else None,
        system_client_id=identity.system_client_id if identity else None,
        user_assigned=linked_identities(tenant, holder),
        modules=dict(modules),
        # The VM keeps what a script installs, for every later Run Command.
        install_module=lambda name, version: modules.__setitem__(name.lower(), version),
    )


def _tail(text: str) -> str:
    data = text.encode()
    return data[-OUTPUT_LIMIT:].decode(errors="ignore") if len(data) > OUTPUT_LIMIT else text


def _linux_machine(tenant: Tenant, vm: ArmResource, now: float) -> LinuxMachine:
    def install_pwsh(version: str) -> None:
        vm.state["pwsh"] = version
        for name, shipped in PWSH_INBOX_MODULES.items():
            vm.state["modules"].setdefault(name, shipped)

    def run_powershell(script: str, version: str) -> ScriptOutcome:
        host = _script_host(tenant, vm, ".".join(version.split(".")[:2]))
        return run_script(tenant, script, host, now=now)

    return LinuxMachine(vm.state.get("pwsh"), install_pwsh, run_powershell)


def _shell_result(outcome: ShellOutcome) -> dict[str, Any]:
    """RunShellScript answers one status whose message holds both streams (the last 4096 bytes of each);
    a script that exits non-zero still 'succeeds' as a Run Command, its message says it failed."""
    stdout = _tail("".join(line + "\n" for line in outcome.stdout))
    stderr = _tail("".join(line + "\n" for line in outcome.stderr))
    head = (
        "Enable succeeded: "
        if outcome.exit_code == 0
        else f"Enable failed: failed to execute command: command terminated with exit status={outcome.exit_code}"
    )
    return {
        "value": [
            {
                "code": "ProvisioningState/succeeded",
                "level": "Info",
                "displayStatus": "Provisioning succeeded",
                "message": f"{head}\n[stdout]\n{stdout}\n[stderr]\n{stderr}",
            }
        ]
    }


def _run_command_result(outcome: ScriptOutcome) -> dict[str, Any]:
    """Script errors land in StdErr; the Run Command itself still succeeds, as in Azure."""
    stdout = [*outcome.output, *(f"WARNING: {w}" for w in outcome.warnings)]
    streams = (("StdOut", "\n".join(stdout)), ("StdErr", "\n".join(outcome.errors)))
    return {
        "value": [
            {
                "code": f"ComponentStatus/{stream}/succeeded",
                "level": "Info",
                "displayStatus": "Provisioning succeeded",
                "message": _tail(message),
            }
            for stream, message in streams
        ]
    }


def _settle(tenant: Tenant, operation: VmOperation, now: float) -> None:
    """Runs a finished Run Command's script once, against the tenant as it is at completion time."""
    if (
        operation.kind not in ("runCommand", "managedRunCommand")
        or operation.result is not None
        or operation.error
    ):
        return
    vm = tenant.get_resource(operation.vm_id)
    if vm is None:
        # The machine went away (deleted, or scaled in from its set): the command ends with it.
        operation.error = {
            "code": "ResourceNotFound",
            "message": f"The virtual machine '{operation.vm_id.rsplit('/', 1)[-1]}' was deleted while the command ran.",
        }
        operation.done_at = min(operation.done_at, now)
        return
    if not operation.done(now):
        return
    if operation.command_id == "RunShellScript":
        machine = _linux_machine(tenant, vm, operation.done_at)
        shell = run_bash(operation.script or "", machine)
        operation.result = _shell_result(shell)
        operation.streams = (
            "".join(line + "\n" for line in shell.stdout),
            "".join(line + "\n" for line in shell.stderr),
            shell.exit_code,
        )
        return
    outcome = run_script(tenant, operation.script or "", _script_host(tenant, vm), now=operation.done_at)
    operation.result = _run_command_result(outcome)
    # A managed Run Command reports an exit code; a script that wrote errors exits 1 (*guess*).
    stdout, stderr = (status["message"] for status in operation.result["value"])
    operation.streams = (stdout, stderr, 1 if outcome.errors else 0)


def settle_run(tenant: Tenant, vm: ArmResource) -> None:
    operation = tenant.operations.get(vm.state.get("run_operation", ""))
    if operation is not None:
        _settle(tenant, operation, time.time())


def _script_of(body: dict[str, Any], linux: bool) -> str:
    lines = body.get("script") or []
    if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
        raise _invalid("The parameter 'script' must be an array of strings.", "script")
    parameters = body.get("parameters") or []
    if not isinstance(parameters, list) or not all(isinstance(p, dict) and p.get("name") for p in parameters):
        raise _invalid("Each run command parameter needs a 'name' and a 'value'.", "parameters")
    # Parameters reach a PowerShell script as variables of the same name (a shell script's environment
    # variables are not emulated: exomi passes none).
    prelude = [] if linux else [f"${p['name']} = '{str(p.get('value', ''))}'" for p in parameters]
    return "\n".join([*prelude, *lines])


async def run_command(ctx: ArmContext) -> web.Response:
    return await run_command_on(ctx, _get_vm(ctx))


async def run_command_on(ctx: ArmContext, vm: ArmResource) -> web.Response:
    """The Run Command action on a machine: a VM, or a scale set's Uniform instance (the same contract)."""
    body = await ctx.json_object()
    command_id = body.get("commandId")
    if not command_id:
        raise _invalid("Required parameter 'commandId' is missing (null).", "commandId")
    if command_id not in COMMAND_OS:
        # What Azure answers for a command id it does not know (azure-powershell#7331).
        raise ArmError(404, "NotFound", "The entity was not found in this Azure location.")
    target_os = os_type(vm)
    if COMMAND_OS[command_id] != target_os:
        # MicrosoftDocs/azure-docs#116419 (RunPowerShellScript on Linux), Azure/repair-script-library#48.
        raise ArmError(
            409,
            "Conflict",
            f"Run command OS type '{COMMAND_OS[command_id]}' does not match the target OS {target_os}.",
        )
    script = _script_of(body, target_os == "Linux")
    if vm.state["power"] != "running":
        raise ArmError(
            409, "OperationNotAllowed", "The operation requires the VM to be running (or set to run)."
        )
    previous = ctx.tenant.operations.get(vm.state.get("run_operation", ""))
    if previous is not None and not previous.done(time.time()):
        raise ArmError(
            409,
            "Conflict",
            "Run command extension execution is in progress. Please wait for completion before invoking a run command.",
        )
    operation = _start_operation(
        ctx, vm, "runCommand", ctx.runtime.timings.run_command, script=script, command_id=command_id
    )
    vm.state["run_operation"] = operation.id
    return web.Response(status=202, headers=_operation_headers(ctx, vm, operation, location=True))


# --------------------------------------------------------------------------------------------------
# Operation status


async def get_operation(ctx: ArmContext) -> web.Response:
    operation = ctx.tenant.operations.get(ctx.params["operationId"])
    if not isinstance(operation, VmOperation):
        raise ArmError(404, "NotFound", "The entity was not found in this Azure location.")
    now = time.time()
    _settle(ctx.tenant, operation, now)
    # Before 2018-04-01 a Run Command's result is the operation status, its output the statuses themselves.
    as_status = ctx.api_version in api_versions.COMPUTE_RUN_COMMAND_AS_STATUS
    output = operation.result
    if as_status and output is not None:
        output = output["value"]
    # No Retry-After: clients poll at their own polling_interval.
    if ctx.request.query.get("monitor", "").lower() == "true":
        # The Location URL: 202 while running, then the operation's result.
        if not operation.done(now):
            return web.Response(status=202, headers={"Location": str(ctx.request.url)})
        if operation.error:
            raise ArmError(404, operation.error["code"], operation.error["message"])
        if operation.result is not None and not as_status:
            return arm_json(operation.result)
        if operation.result is None:
            return web.Response(status=200)
    body: dict[str, Any] = {
        "startTime": iso(operation.started_at),
        "status": "InProgress",
        "name": operation.id,
    }
    if not operation.done(now):
        return arm_json(body)
    body["endTime"] = iso(operation.done_at)
    if operation.error:
        body.update(status="Failed", error=operation.error)
    else:
        body["status"] = "Succeeded"
        if operation.result is not None:
            body["properties"] = {"output": output}
    return arm_json(body)


# (name, cores, memory MB, resource disk MB, data disks): the spec example's Av2 sizes and the B-series
# sizes the seed procedure uses (learn.microsoft.com virtual-machines/sizes/general-purpose/b-family).
VM_SIZES: tuple[tuple[str, int, int, int, int], ...] = (
    ("Standard_A1_v2", 1, 2048, 10240, 2),
    ("Standard_A2_v2", 2, 4096, 20480, 4),
    ("Standard_B1s", 1, 1024, 4096, 2),
    ("Standard_B1ms", 1, 2048, 4096, 2),
    ("Standard_B2s", 2, 4096, 8192, 4),
    ("Standard_B2ms", 2, 8192, 16384, 4),
)


def _sizes_json() -> dict[str, Any]:
    return {
        "value": [
            {
                "name": name,
                "numberOfCores": cores,
                "osDiskSizeInMB": 1047552,
                "resourceDiskSizeInMB": disk,
                "memoryInMB": memory,
                "maxDataDiskCount": data_disks,
            }
            for name, cores, memory, disk, data_disks in VM_SIZES
        ]
    }


async def list_sizes(ctx: ArmContext) -> web.Response:
    """VirtualMachineSizes_List: every emulated region offers the same sizes (VirtualMachineSizeListResult
    has no nextLink)."""
    return arm_json(_sizes_json())


async def list_available_sizes(ctx: ArmContext) -> web.Response:
    """VirtualMachines_ListAvailableSizes: what the VM can be resized to."""
    tracked.require(ctx, VM_TYPE, "vmName")
    return arm_json(_sizes_json())


def register(router: ArmRouter) -> None:
    common = {
        "api_versions": api_versions.COMPUTE,
        "provider": "Microsoft.Compute",
        "resource_type": "virtualMachines",
    }
    item = tracked.add_routes(
        router,
        VM_TYPE,
        "vmName",
        put=create_or_update,
        get=get_vm,
        patch=update_vm,
        delete=delete_vm,
        list_by_resource_group=list_by_resource_group,
        list_by_subscription=list_by_subscription,
        **common,
    )
    action = VM_TYPE
    router.add("GET", item + "/instanceView", instance_view, action=f"{action}/instanceView/read", **common)
    run_args = {**common, "api_versions": api_versions.COMPUTE_RUN_COMMAND_ACTION}
    router.add("POST", item + "/runCommand", run_command, action=f"{action}/runCommand/action", **run_args)
    router.add("GET", item + "/vmSizes", list_available_sizes, action=f"{action}/vmSizes/read", **common)
    router.add(
        "GET",
        "/subscriptions/{subscriptionId}/providers/Microsoft.Compute/locations/{location}/vmSizes",
        list_sizes,
        action="Microsoft.Compute/locations/vmSizes/read",
        **{**common, "resource_type": "locations/vmSizes"},
    )
    for kind in POWER_ACTIONS:
        router.add("POST", f"{item}/{kind}", _power_action(kind), action=f"{action}/{kind}/action", **common)
    router.add(
        "GET",
        "/subscriptions/{subscriptionId}/providers/Microsoft.Compute/locations/{location}/operations/{operationId}",
        get_operation,
        action="Microsoft.Compute/locations/operations/read",
        **{**common, "resource_type": "locations/operations"},
    )


# What emulator/arm/scale_sets.py shares with VMs: a scale set's instances are machines like VMs.
normalized_properties = _normalized_properties
merge_patch = _merge_patch
start_operation = _start_operation
operation_headers = _operation_headers
instance_view_of = _instance_view
settle = _settle
script_of = _script_of
