"""Microsoft.Compute virtual machine scale sets: create/read/update/delete, list, their instances, and
Run Command on each instance.

A scale set has one ``identity`` (system- and/or user-assigned, applied as on a VM) that every instance
uses: one principal for the whole set. ``sku.capacity`` is the number of instances; a PUT or PATCH that
changes it adds instances (scale out) or removes the highest-numbered ones (the Default scale-in policy).
``properties.orchestrationMode`` decides what an instance is:

* **Uniform** (the REST API's default): instances are ``…/virtualMachineScaleSets/{name}/virtualMachines/
  {instanceId}`` (ids 0, 1, 2, … never reused), listed and read there, and run scripts through
  ``POST …/virtualmachines/{instanceId}/runCommand`` (the VM's Run Command contract: the same 202 and
  operation URLs, the same outputs, the same 409 while a command runs).
* **Flexible**: instances are ordinary ``Microsoft.Compute/virtualMachines`` named ``{set}_{8 hex}`` whose
  ``properties.virtualMachineScaleSet.id`` names the set (``virtualMachines?$filter='virtualMachineScaleSet/id'
  eq '<id>'`` lists them); Run Command on them is the VM's. The instance APIs of Uniform sets answer 400.

Each instance is a machine like a VM (emulator/arm/compute.py): Windows with Windows PowerShell 5.1, or Linux
(``virtualMachineProfile`` says which, as a VM's profile does) with no pwsh until a script installs it; what
a script installs stays on that instance only. Sources and guesses: emulator/README.md, "VM scale sets".
"""

from __future__ import annotations

import re
import secrets
import string
import time
import uuid
from typing import Any

from aiohttp import web

from emulator.arm import api_versions, compute, tracked
from emulator.arm.identity import apply_identity, identity_json
from emulator.arm.router import ArmContext, ArmRouter, arm_json, paged, require_resource_group, validate_tags
from emulator.http import ArmError
from emulator.tenant import ArmResource, iso

VMSS_TYPE = "Microsoft.Compute/virtualMachineScaleSets"
INSTANCE_TYPE = "Microsoft.Compute/virtualMachineScaleSets/virtualMachines"
MODES = {"uniform": "Uniform", "flexible": "Flexible"}
# Microsoft Learn "Naming rules and restrictions for Azure resources", Microsoft.Compute
# virtualMachineScaleSets: no spaces, control characters or ~!@#$%^&*()=+_[]{}\|;:.'",<>/? (so letters,
# digits and hyphens), can't start with '_', can't end with '.' or '-'; its 1-15 (Windows) / 1-64 (Linux)
# lengths are the host name's, "the actual resource name can have up to 64 characters".
NAME_RE = re.compile(r"^[A-Za-z0-9-]{0,63}[A-Za-z0-9]$")
# The same page: a Windows host name has at most 15 characters; an instance's computer name is the prefix
# and 6 characters, so a Windows prefix is cut to 9 there (*inference*, see emulator/README.md).
WINDOWS_COMPUTER_NAME = 15
INSTANCE_SUFFIX = 6
MAX_CAPACITY = 1000  # a scale set's limit (Flexible and Uniform with platform images)
READ_ONLY_PROPERTIES = {"provisioningState", "uniqueId", "timeCreated"}


def _invalid(message: str, target: str) -> ArmError:
    return ArmError(400, "InvalidParameter", message, target=target)


def _set_id(ctx: ArmContext, rg_id: str) -> str:
    return tracked.resource_id(ctx, rg_id, VMSS_TYPE, "vmScaleSetName")


def _get_set(ctx: ArmContext) -> ArmResource:
    return tracked.require(ctx, VMSS_TYPE, "vmScaleSetName")


def mode(scale_set: ArmResource) -> str:
    return str(scale_set.properties["orchestrationMode"])


# --------------------------------------------------------------------------------------------------
# Instances


def instances(tenant: Any, scale_set: ArmResource) -> list[ArmResource]:
    """The set's instances in instance order: Uniform ones under the set, Flexible ones among the VMs."""
    if mode(scale_set) == "Uniform":
        found = tenant.children(f"{scale_set.id}/virtualMachines")
        return sorted(found, key=lambda r: int(r.state["instance_id"]))
    rg_id = scale_set.id.split("/providers/", 1)[0]
    vms = tenant.children(f"{rg_id}/providers/{compute.VM_TYPE}")
    mine = [vm for vm in vms if str(vm.state.get("scale_set", "")).lower() == scale_set.key]
    return sorted(mine, key=lambda r: r.state["instance_number"])


def _computer_name(prefix: str, number: int, uniform: bool) -> str:
    """Uniform: the prefix and the instance id in base 36 on 6 characters; Flexible: 6 random ones."""
    if not uniform:
        return prefix + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(6))
    digits, text = string.digits + string.ascii_uppercase, ""
    for _ in range(6):
        number, rest = divmod(number, 36)
        text = digits[rest] + text
    return prefix + text


def _add_instance(ctx: ArmContext, scale_set: ArmResource) -> None:
    number = scale_set.state["next_instance"]
    scale_set.state["next_instance"] = number + 1
    profile = scale_set.properties["virtualMachineProfile"]
    os_profile = dict(profile.get("osProfile") or {})
    prefix = os_profile.pop("computerNamePrefix", None) or scale_set.name[:9]
    uniform = mode(scale_set) == "Uniform"
    if compute.os_type_of(profile) == "Windows":  # the stored profile's OS is settled (_profile)
        prefix = prefix[: WINDOWS_COMPUTER_NAME - INSTANCE_SUFFIX]
    computer_name = _computer_name(prefix, number, uniform)
    name = f"{scale_set.name}_{number}" if uniform else f"{scale_set.name}_{uuid.uuid4().hex[:8]}"
    properties = compute.normalized_properties(
        computer_name,
        {
            "hardwareProfile": {"vmSize": scale_set.state["sku"]["name"]},
            "storageProfile": profile.get("storageProfile") or {},
            "osProfile": {**os_profile, "computerName": computer_name},
        },
    )
    properties["vmId"] = str(uuid.uuid4())
    linux = compute.os_type_of(properties) == "Linux"
    state = {
        "version": 1,
        "power": "running",
        "modules": {} if linux else dict(compute.INBOX_MODULES),
        "pwsh": None,
        "scale_set": scale_set.id,
        "instance_number": number,
    }
    if uniform:
        instance_id = str(number)
        resource = ArmResource(
            id=f"{scale_set.id}/virtualMachines/{instance_id}",
            type=INSTANCE_TYPE,
            name=name,
            location=scale_set.location,
            created_by=ctx.caller.principal.app_id,
            properties={"latestModelApplied": True, **properties},
            state={**state, "instance_id": instance_id},
        )
    else:
        rg_id = scale_set.id.split("/providers/", 1)[0]
        properties["virtualMachineScaleSet"] = {"id": scale_set.id}
        resource = ArmResource(
            id=f"{rg_id}/providers/{compute.VM_TYPE}/{name}",
            type=compute.VM_TYPE,
            name=name,
            location=scale_set.location,
            created_by=ctx.caller.principal.app_id,
            properties=properties,
            state=state,
        )
    ctx.tenant.put_resource(resource)


def _scale(ctx: ArmContext, scale_set: ArmResource, capacity: int) -> None:
    current = instances(ctx.tenant, scale_set)
    for _ in range(capacity - len(current)):
        _add_instance(ctx, scale_set)
    # Scale in (policy Default): the highest instance ids go first.
    for instance in reversed(current[capacity:] if capacity < len(current) else []):
        ctx.tenant.delete_resource_tree(instance.id)


def instance_json(tenant: Any, scale_set: ArmResource, instance: ArmResource, *, view: bool = False) -> dict:
    now = time.time()
    sku = scale_set.state["sku"]
    properties = {
        **instance.properties,
        "provisioningState": "Succeeded",
        "timeCreated": iso(instance.created_at),
    }
    if view:
        properties["instanceView"] = compute.instance_view_of(instance, now)
    body: dict[str, Any] = {
        "id": instance.id,
        "name": instance.name,
        "type": INSTANCE_TYPE,
        "location": instance.location,
        "instanceId": instance.state["instance_id"],
        "sku": {"name": sku["name"], "tier": sku.get("tier", "Standard")},
        "properties": properties,
        "etag": f'"{instance.state["version"]}"',
    }
    if scale_set.identity is not None:
        body["identity"] = identity_json(tenant, scale_set)
    return body


# --------------------------------------------------------------------------------------------------
# JSON and validation


def scale_set_json(tenant: Any, scale_set: ArmResource) -> dict[str, Any]:
    now = time.time()
    busy = now < scale_set.state.get("busy_until", 0)
    body: dict[str, Any] = {
        "id": scale_set.id,
        "name": scale_set.name,
        "type": VMSS_TYPE,
        "location": scale_set.location,
        "sku": {**scale_set.state["sku"], "capacity": len(instances(tenant, scale_set))},
    }
    if scale_set.tags:
        body["tags"] = scale_set.tags
    if scale_set.identity is not None:
        body["identity"] = identity_json(tenant, scale_set)
    body["etag"] = f'"{scale_set.state["version"]}"'
    body["properties"] = {
        **scale_set.properties,
        "provisioningState": scale_set.state["busy_state"] if busy else "Succeeded",
        "uniqueId": scale_set.state["unique_id"],
        "timeCreated": iso(scale_set.created_at),
    }
    return body


def _capacity(sku: Any, current: int | None) -> int:
    if sku is None:
        if current is None:
            raise _invalid("Required parameter 'sku' is missing (null).", "sku")
        return current
    if not isinstance(sku, dict):
        raise _invalid("The parameter 'sku' must be an object.", "sku")
    capacity = sku.get("capacity", current if current is not None else 0)
    if isinstance(capacity, bool) or not isinstance(capacity, int) or not 0 <= capacity <= MAX_CAPACITY:
        raise _invalid(
            f"The value '{capacity}' of parameter 'sku.capacity' is invalid: use 0 to {MAX_CAPACITY}.",
            "sku.capacity",
        )
    return capacity


def _profile(profile: Any, scale_set_name: str) -> dict[str, Any]:
    """The VM profile as the service stores it: secrets dropped, the OS settled (as a VM's)."""
    if not isinstance(profile, dict):
        raise _invalid("The parameter 'virtualMachineProfile' must be an object.", "virtualMachineProfile")
    os_profile = dict(profile.get("osProfile") or {})
    prefix = os_profile.get("computerNamePrefix") or scale_set_name[:9]
    # Reuse the VM's rules for the OS (image publisher, osType, linux/windowsConfiguration).
    settled = compute.normalized_properties(
        prefix,
        {
            "hardwareProfile": {"vmSize": "profile"},
            "storageProfile": profile.get("storageProfile") or {},
            "osProfile": {k: v for k, v in os_profile.items() if k != "computerNamePrefix"},
        },
    )
    linux = compute.os_type_of(settled) == "Linux"
    if not linux and len(prefix) > WINDOWS_COMPUTER_NAME:
        raise _invalid(
            f"The computer name prefix '{prefix}' is too long: a Windows scale set's prefix has at most 15 characters.",
            "osProfile.computerNamePrefix",
        )
    storage = dict(settled["storageProfile"])
    storage["osDisk"] = {k: v for k, v in storage["osDisk"].items() if k != "name"}
    os_settled = {k: v for k, v in settled["osProfile"].items() if k != "computerName"}
    return {**profile, "osProfile": {"computerNamePrefix": prefix, **os_settled}, "storageProfile": storage}


# --------------------------------------------------------------------------------------------------
# Scale sets


async def create_or_update(ctx: ArmContext) -> web.Response:
    rg_id = require_resource_group(ctx)
    body = await ctx.json_object()
    name = ctx.params["vmScaleSetName"]
    if not NAME_RE.match(name):
        raise _invalid(
            f"Virtual machine scale set name '{name}' is invalid. It can contain letters, numbers and hyphens, "
            "must not end with a hyphen or a period, and be at most 64 characters long.",
            "vmScaleSetName",
        )
    location = tracked.require_location(body)
    tags = validate_tags(body.get("tags"))
    existing = ctx.tenant.get_resource(_set_id(ctx, rg_id))
    tracked.require_same_location(ctx, existing, name, location)
    properties = body.get("properties")
    if not isinstance(properties, dict):
        raise _invalid("Required parameter 'properties' is missing (null).", "properties")
    properties = {k: v for k, v in properties.items() if k not in READ_ONLY_PROPERTIES}
    raw_mode = properties.get("orchestrationMode") or (mode(existing) if existing else "Uniform")
    orchestration = MODES.get(str(raw_mode).lower())
    if orchestration is None:
        raise _invalid(
            f"The value '{raw_mode}' of parameter 'orchestrationMode' is invalid: use Uniform or Flexible.",
            "orchestrationMode",
        )
    if existing is not None and orchestration != mode(existing):
        raise ArmError(
            400,
            "PropertyChangeNotAllowed",
            "Changing property 'orchestrationMode' is not allowed.",
            target="orchestrationMode",
        )
    capacity = _capacity(body.get("sku"), len(instances(ctx.tenant, existing)) if existing else None)
    # A PUT without a sku keeps the set's (its capacity too).
    given = body.get("sku") or (existing.state["sku"] if existing else {})
    sku = {k: v for k, v in given.items() if k != "capacity"}
    if not sku.get("name"):
        raise _invalid("Required parameter 'sku.name' is missing (null).", "sku.name")
    profile = properties.get("virtualMachineProfile")
    if profile is None and (orchestration == "Uniform" or capacity > 0):
        raise _invalid(
            "Required parameter 'virtualMachineProfile' is missing (null).", "virtualMachineProfile"
        )
    if profile is not None:
        properties["virtualMachineProfile"] = _profile(profile, name)
        if existing is not None and "virtualMachineProfile" in existing.properties:
            before = compute.os_type_of(existing.properties["virtualMachineProfile"])
            if compute.os_type_of(properties["virtualMachineProfile"]) != before:
                raise _invalid("Changing property 'osDisk.osType' is not allowed.", "osDisk.osType")
    properties["orchestrationMode"] = orchestration
    scale_set = existing or ArmResource(
        id=_set_id(ctx, rg_id),
        type=VMSS_TYPE,
        name=name,
        location=location,
        created_by=ctx.caller.principal.app_id,
        state={"version": 0, "next_instance": 0, "unique_id": str(uuid.uuid4())},
    )
    apply_identity(ctx, scale_set, body.get("identity"), patch=False)
    scale_set.properties, scale_set.tags = properties, tags
    scale_set.state["sku"] = {"tier": "Standard", **sku}
    ctx.tenant.put_resource(scale_set)
    _scale(ctx, scale_set, capacity)
    return _written(ctx, scale_set, 200 if existing else 201, "Updating" if existing else "Creating")


def _written(ctx: ArmContext, scale_set: ArmResource, status: int, busy: str) -> web.Response:
    tracked.touch(scale_set, ctx)
    scale_set.state["version"] += 1
    operation = compute.start_operation(ctx, scale_set, busy.lower(), ctx.runtime.timings.lro)
    scale_set.state.update(busy_state=busy, busy_until=operation.done_at)
    return arm_json(
        scale_set_json(ctx.tenant, scale_set),
        status,
        headers=compute.operation_headers(ctx, scale_set, operation, location=False),
    )


async def get_scale_set(ctx: ArmContext) -> web.Response:
    return arm_json(scale_set_json(ctx.tenant, _get_set(ctx)))


async def update_scale_set(ctx: ArmContext) -> web.Response:
    """PATCH (VirtualMachineScaleSetUpdate): tags, identity, sku (a new capacity scales), properties merged."""
    scale_set = _get_set(ctx)
    body = await ctx.json_object()
    tags = validate_tags(body["tags"]) if "tags" in body else scale_set.tags
    capacity = _capacity(body.get("sku"), len(instances(ctx.tenant, scale_set)))
    properties = scale_set.properties
    if body.get("properties") is not None:
        if not isinstance(body["properties"], dict):
            raise _invalid("The parameter 'properties' must be an object.", "properties")
        patch = body["properties"]
        if (
            "orchestrationMode" in patch
            and str(patch["orchestrationMode"]).lower() != mode(scale_set).lower()
        ):
            raise ArmError(
                400,
                "PropertyChangeNotAllowed",
                "Changing property 'orchestrationMode' is not allowed.",
                target="orchestrationMode",
            )
        properties = compute.merge_patch(scale_set.properties, patch)
        if "virtualMachineProfile" in patch and properties.get("virtualMachineProfile") is not None:
            properties["virtualMachineProfile"] = _profile(
                properties["virtualMachineProfile"], scale_set.name
            )
    if capacity > 0 and properties.get("virtualMachineProfile") is None:
        raise _invalid(
            "Required parameter 'virtualMachineProfile' is missing (null).", "virtualMachineProfile"
        )
    apply_identity(ctx, scale_set, body.get("identity"), patch=True)
    scale_set.tags, scale_set.properties = tags, properties
    if isinstance(body.get("sku"), dict):
        scale_set.state["sku"].update({k: v for k, v in body["sku"].items() if k != "capacity"})
    _scale(ctx, scale_set, capacity)
    return _written(ctx, scale_set, 200, "Updating")


async def delete_scale_set(ctx: ArmContext) -> web.Response:
    scale_set = tracked.find(ctx, VMSS_TYPE, "vmScaleSetName")
    if scale_set is None:
        return tracked.already_deleted(ctx)
    operation = compute.start_operation(ctx, scale_set, "delete", ctx.runtime.timings.lro)
    # A Flexible set's VMs go with it (a guess: the delete's forceDeletion is not modelled).
    for instance in instances(ctx.tenant, scale_set):
        ctx.tenant.delete_resource_tree(instance.id)
    ctx.tenant.delete_resource_tree(scale_set.id)
    return web.Response(
        status=202, headers=compute.operation_headers(ctx, scale_set, operation, location=True)
    )


async def list_by_resource_group(ctx: ArmContext) -> web.Response:
    found = tracked.in_resource_group(ctx, VMSS_TYPE)
    return paged(ctx, [scale_set_json(ctx.tenant, s) for s in found])


async def list_by_subscription(ctx: ArmContext) -> web.Response:
    found = tracked.in_subscription(ctx, VMSS_TYPE)
    return paged(ctx, [scale_set_json(ctx.tenant, s) for s in found])


# --------------------------------------------------------------------------------------------------
# Uniform instances


def _uniform(ctx: ArmContext, operation: str) -> ArmResource:
    """The set, if it is Uniform: a Flexible set's instances are served by the VM APIs only."""
    scale_set = _get_set(ctx)
    if mode(scale_set) != "Uniform":
        raise ArmError(
            400,
            "BadRequest",
            f"Operation 'VirtualMachineScaleSets.{operation}' is not allowed on Virtual Machine Scale Set "
            f"{scale_set.name}.",
        )
    return scale_set


def _instance(ctx: ArmContext, scale_set: ArmResource) -> ArmResource:
    instance = ctx.tenant.get_resource(f"{scale_set.id}/virtualMachines/{ctx.params['instanceId']}")
    if instance is None:
        raise ArmError(404, "NotFound", "The entity was not found in this Azure location.")
    compute.settle_run(ctx.tenant, instance)
    return instance


async def list_instances(ctx: ArmContext) -> web.Response:
    scale_set = _uniform(ctx, "virtualMachines.GET")
    return paged(ctx, [instance_json(ctx.tenant, scale_set, i) for i in instances(ctx.tenant, scale_set)])


async def get_instance(ctx: ArmContext) -> web.Response:
    scale_set = _uniform(ctx, "virtualMachines.GET")
    expand = ctx.request.query.get("$expand", "").lower() == "instanceview"
    return arm_json(instance_json(ctx.tenant, scale_set, _instance(ctx, scale_set), view=expand))


async def instance_run_command(ctx: ArmContext) -> web.Response:
    instance = _instance(ctx, _uniform(ctx, "virtualMachines.runCommand.POST"))
    return await compute.run_command_on(ctx, instance)


# --------------------------------------------------------------------------------------------------
# Managed Run Commands of Uniform instances (VirtualMachineScaleSetVMRunCommands_*)

RUN_COMMAND_TYPE = "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommands"
# Sent, never returned (secrets), or computed by the service.
RUN_COMMAND_HIDDEN = {"runAsPassword", "protectedParameters", "provisioningState", "instanceView"}


def _run_command_id(ctx: ArmContext, instance: ArmResource) -> str:
    return f"{instance.id}/runCommands/{ctx.params['runCommandName']}"


def _find_run_command(ctx: ArmContext) -> tuple[ArmResource, ArmResource | None]:
    instance = _instance(ctx, _uniform(ctx, "virtualMachines.runCommands"))
    return instance, ctx.tenant.get_resource(_run_command_id(ctx, instance))


def _run_command_operation(ctx: ArmContext, run: ArmResource) -> compute.VmOperation | None:
    operation = ctx.tenant.operations.get(run.state.get("operation", ""))
    if isinstance(operation, compute.VmOperation):
        compute.settle(ctx.tenant, operation, time.time())
        return operation
    return None


def run_command_json(ctx: ArmContext, run: ArmResource, *, view: bool) -> dict[str, Any]:
    operation = _run_command_operation(ctx, run)
    done = operation is not None and operation.streams is not None
    properties = {**run.properties, "provisioningState": "Succeeded" if done else run.state["busy_state"]}
    if view and operation is not None:
        stdout, stderr, exit_code = operation.streams or ("", "", 0)
        instance_view: dict[str, Any] = {
            "executionState": ("Succeeded" if exit_code == 0 else "Failed") if done else "Running",
            "startTime": iso(operation.started_at),
        }
        if done:
            instance_view.update(
                executionMessage="Execution completed"
                if exit_code == 0
                else f"Execution failed: exit code {exit_code}",
                exitCode=exit_code,
                output=stdout,
                error=stderr,
                endTime=iso(operation.done_at),
            )
        properties["instanceView"] = instance_view
    body: dict[str, Any] = {
        "id": run.id,
        "name": run.name,
        "type": RUN_COMMAND_TYPE,
        "location": run.location,
        "properties": properties,
    }
    if run.tags:
        body["tags"] = run.tags
    return body


async def put_run_command(ctx: ArmContext) -> web.Response:
    """Creates (or replaces) a managed Run Command: its script runs on the instance, and the PUT's
    operation ends when it has (asyncExecution false, the default)."""
    instance, existing = _find_run_command(ctx)
    body = await ctx.json_object()
    location = tracked.require_location(body)
    tags = validate_tags(body.get("tags"))
    properties = body.get("properties")
    if not isinstance(properties, dict):
        raise _invalid("Required parameter 'properties' is missing (null).", "properties")
    source = properties.get("source")
    if not isinstance(source, dict) or not isinstance(source.get("script"), str):
        raise _invalid(
            "The run command needs 'source.script' (the emulator does not download 'source.scriptUri' nor run "
            "gallery scripts).",
            "source",
        )
    linux = compute.os_type(instance) == "Linux"
    script = compute.script_of(
        {"script": source["script"].splitlines(), "parameters": properties.get("parameters") or []}, linux
    )
    command_id = "RunShellScript" if linux else "RunPowerShellScript"
    operation = compute.start_operation(
        ctx,
        instance,
        "managedRunCommand",
        ctx.runtime.timings.run_command,
        script=script,
        command_id=command_id,
    )
    run = existing or ArmResource(
        id=_run_command_id(ctx, instance),
        type=RUN_COMMAND_TYPE,
        name=ctx.params["runCommandName"],
        location=location,
        created_by=ctx.caller.principal.app_id,
    )
    run.properties = {k: v for k, v in properties.items() if k not in RUN_COMMAND_HIDDEN}
    run.properties.setdefault("asyncExecution", False)
    run.tags = tags
    run.state.update(operation=operation.id, busy_state="Updating" if existing else "Creating")
    tracked.touch(run, ctx)
    ctx.tenant.put_resource(run)
    return arm_json(
        run_command_json(ctx, run, view=False),
        200 if existing else 201,
        headers=compute.operation_headers(ctx, instance, operation, location=False),
    )


async def get_run_command(ctx: ArmContext) -> web.Response:
    _, run = _find_run_command(ctx)
    if run is None:
        raise ArmError(404, "NotFound", "The entity was not found in this Azure location.")
    expand = ctx.request.query.get("$expand", "").lower() == "instanceview"
    return arm_json(run_command_json(ctx, run, view=expand))


async def list_run_commands(ctx: ArmContext) -> web.Response:
    instance = _instance(ctx, _uniform(ctx, "virtualMachines.runCommands"))
    runs = ctx.tenant.children(f"{instance.id}/runCommands")
    expand = ctx.request.query.get("$expand", "").lower() == "instanceview"
    return paged(ctx, [run_command_json(ctx, run, view=expand) for run in runs])


async def delete_run_command(ctx: ArmContext) -> web.Response:
    instance, run = _find_run_command(ctx)
    if run is None:
        return tracked.already_deleted(ctx)
    operation = compute.start_operation(ctx, instance, "delete", ctx.runtime.timings.lro)
    ctx.tenant.delete_resource_tree(run.id)
    return web.Response(
        status=202, headers=compute.operation_headers(ctx, instance, operation, location=True)
    )


def register(router: ArmRouter) -> None:
    common = {
        "api_versions": api_versions.COMPUTE,
        "provider": "Microsoft.Compute",
        "resource_type": "virtualMachineScaleSets",
    }
    item = tracked.add_routes(
        router,
        VMSS_TYPE,
        "vmScaleSetName",
        put=create_or_update,
        get=get_scale_set,
        patch=update_scale_set,
        delete=delete_scale_set,
        list_by_resource_group=list_by_resource_group,
        list_by_subscription=list_by_subscription,
        **common,
    )
    vms = {**common, "resource_type": "virtualMachineScaleSets/virtualMachines"}
    action = f"{INSTANCE_TYPE}"
    router.add("GET", item + "/virtualMachines", list_instances, action=f"{action}/read", **vms)
    router.add("GET", item + "/virtualMachines/{instanceId}", get_instance, action=f"{action}/read", **vms)
    runs = {
        **common,
        "resource_type": "virtualMachineScaleSets/virtualMachines/runCommands",
        "api_versions": api_versions.COMPUTE_RUN_COMMANDS,
    }
    run_item = item + "/virtualMachines/{instanceId}/runCommands/{runCommandName}"
    router.add("PUT", run_item, put_run_command, action=f"{RUN_COMMAND_TYPE}/write", **runs)
    router.add("GET", run_item, get_run_command, action=f"{RUN_COMMAND_TYPE}/read", **runs)
    router.add("DELETE", run_item, delete_run_command, action=f"{RUN_COMMAND_TYPE}/delete", **runs)
    router.add(
        "GET",
        item + "/virtualMachines/{instanceId}/runCommands",
        list_run_commands,
        action=f"{RUN_COMMAND_TYPE}/read",
        **runs,
    )
    router.add(
        "POST",
        item + "/virtualmachines/{instanceId}/runCommand",
        instance_run_command,
        action=f"{action}/runCommand/action",
        **{**vms, "api_versions": api_versions.COMPUTE_INSTANCE_RUN_COMMAND_ACTION},
    )
