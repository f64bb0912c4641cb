"""ARM adapter: the Automation account, VM, VM scale set, site and user-assigned identity calls exomi makes, returning
plain data and raising only exomi errors. "Not found" is an answer (None) where absence is normal."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, cast

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.polling.async_base_polling import AsyncLROBasePolling
from azure.core.polling.base_polling import BadResponse, BadStatus, LocationPolling, StatusCheckPolling
from azure.mgmt.core.polling.async_arm_polling import AsyncARMPolling

from shared.azure.clients import AzureClients
from shared.azure.failures import from_arm
from shared.errors import Transient
from shared.ids import TargetKind, validate_guid

if TYPE_CHECKING:  # the SDKs' TypedDicts of the JSON bodies exomi sends (annotations only)
    from azure.mgmt.automation.types import (
        ContentLink,
        JobCreateParameters,
        ModuleCreateOrUpdateParameters,
        PackageCreateOrUpdateParameters,
        RunbookCreateOrUpdateParameters,
        RunbookCreateOrUpdateProperties,
    )
    from azure.mgmt.automation.types import RuntimeEnvironment as RuntimeEnvironmentBody
    from azure.mgmt.compute.types import RunCommandInput

GALLERY_PACKAGE_URL = "https://www.powershellgallery.com/api/v2/package/{name}/{version}"
MANAGED_BY_TAG = "managed-by"
# "Created" is what the built-in (global) modules report.
SUCCEEDED_IMPORT_STATES = {"succeeded", "created"}
TERMINAL_IMPORT_STATES = SUCCEEDED_IMPORT_STATES | {"failed", "canceled"}
TERMINAL_JOB_STATES = {"completed", "failed", "stopped", "suspended"}


@dataclass(frozen=True)
class ResourceRef:
    """A resource in a resource group, by its parts (already validated by shared.ids)."""

    subscription_id: str
    resource_group: str
    name: str


@dataclass(frozen=True)
class IdentityInfo:
    principal_id: str  # object id of the service principal: what Graph assignments use
    client_id: str  # app id: what -ManagedIdentityAccountId uses
    resource_id: str | None = None  # the user-assigned identity's ARM id (None for system-assigned)


@dataclass(frozen=True)
class TargetResource:
    id: str
    name: str
    location: str
    tags: dict[str, str]
    system_identity: IdentityInfo | None
    user_assigned: dict[str, IdentityInfo] = field(default_factory=dict)  # lower-cased UAI id -> identity
    os_type: str | None = None  # a VM's "Windows" or "Linux"; None for other targets
    site_kind: str | None = None  # a site's kind ("functionapp", "functionapp,linux", "app"); None for others
    orchestration_mode: str | None = None  # a scale set's "Uniform" or "Flexible"; None for others


@dataclass(frozen=True)
class HybridWorker:
    """One machine of a Hybrid Runbook Worker group: ``machine_id`` is its Azure VM or Arc server ("" for a
    legacy agent-based worker, which names no resource)."""

    name: str  # the machine's name (workerName)
    machine_id: str
    worker_type: str  # HybridV2 (extension-based) | HybridV1 (agent-based)


@dataclass(frozen=True)
class ScaleSetInstance:
    """One machine of a scale set: a Uniform instance (by instance id) or a Flexible set's VM (by name).
    ``name`` is unique in the set and never reused (Uniform ids are not; Flexible names are random)."""

    name: str
    instance_id: str | None  # Uniform: Run Command goes to the set's instance
    vm: ResourceRef | None  # Flexible: Run Command goes to the VM


@dataclass(frozen=True)
class ImportState:
    """A 5.1 module or a runtime-environment package."""

    name: str
    version: str | None
    provisioning_state: str
    error: str | None

    @property
    def done(self) -> bool:
        return self.provisioning_state.lower() in TERMINAL_IMPORT_STATES

    @property
    def succeeded(self) -> bool:
        return self.provisioning_state.lower() in SUCCEEDED_IMPORT_STATES


@dataclass(frozen=True)
class RunbookState:
    name: str
    state: str  # New | Edit | Published
    runtime_environment: str | None
    published_content: str | None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def managed_by_exomi(self) -> bool:
        return self.tags.get(MANAGED_BY_TAG) == "exomi"


@dataclass(frozen=True)
class JobState:
    name: str
    status: str
    exception: str | None
    output: str | None

    @property
    def done(self) -> bool:
        return self.status.lower() in TERMINAL_JOB_STATES


@dataclass(frozen=True)
class RunCommandOutcome:
    stdout: str
    stderr: str


# RunShellScript answers one status whose message holds both streams, after a first line that says whether
# the script exited 0 ("Enable succeeded: ") or not ("Enable failed: ... exit status=N").
_SHELL_MESSAGE = re.compile(
    r"^(?P<head>[^\n]*)\n\[stdout\]\n(?P<out>.*?)\n?\[stderr\]\n(?P<err>.*)$", re.DOTALL
)


# pwsh strips its colours from redirected output by default (about_ANSI_Terminals, OutputRendering Host), but a
# profile or a setting can turn them back on: exomi reads plain text either way.
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def shell_outcome(message: str) -> RunCommandOutcome:
    match = _SHELL_MESSAGE.match(_ANSI_ESCAPE.sub("", message))
    if match is None:
        return RunCommandOutcome(message, "")
    stderr = match["err"].strip()
    if not match["head"].lower().startswith("enable succeeded"):
        # A non-zero exit is a failure even when the script wrote nothing to stderr.
        stderr = "\n".join(part for part in (stderr, match["head"].strip()) if part)
    return RunCommandOutcome(match["out"], stderr)


def vm_os_type(vm: Any) -> str:
    """The VM's OS, Linux or Windows: its OS disk's type (the image sets it), else its OS profile."""
    storage = getattr(vm, "storage_profile", None)
    disk = getattr(storage, "os_disk", None) if storage is not None else None
    named = _text(getattr(disk, "os_type", None)) if disk is not None else None
    if named:
        return "Linux" if named.lower() == "linux" else "Windows"
    profile = getattr(vm, "os_profile", None)
    return "Linux" if getattr(profile, "linux_configuration", None) is not None else "Windows"


def scale_set_os_type(scale_set: Any) -> str:
    """A scale set's OS: its VM profile's, read as a VM's."""
    properties = getattr(scale_set, "properties", None)
    return vm_os_type(getattr(properties, "virtual_machine_profile", None))


def _text(value: Any) -> str | None:
    """An SDK enum member or plain string as its wire value."""
    return None if value is None else str(getattr(value, "value", value))


def _identity(identity: Any) -> tuple[IdentityInfo | None, dict[str, IdentityInfo]]:
    if identity is None:
        return None, {}
    system = None
    principal_id = getattr(identity, "principal_id", None)
    if principal_id:
        system = IdentityInfo(principal_id=principal_id, client_id="")
    linked = {}
    for uai_id, value in (getattr(identity, "user_assigned_identities", None) or {}).items():
        if value is not None and getattr(value, "principal_id", None):
            linked[uai_id.lower()] = IdentityInfo(value.principal_id, value.client_id, uai_id)
    return system, linked


def _target(resource: Any) -> TargetResource:
    """An Automation account, VM, scale set or site (each carries an ARM ``identity`` block) as a target."""
    system, linked = _identity(resource.identity)
    return TargetResource(
        resource.id, resource.name, resource.location, dict(resource.tags or {}), system, linked
    )


def _gallery_link(name: str, version: str) -> ContentLink:
    """The content link that imports ``name`` ``version`` from the PowerShell Gallery (a module or a
    package: their bodies are ``{"properties": {"contentLink": ...}}``)."""
    return {"uri": GALLERY_PACKAGE_URL.format(name=name, version=version), "version": version}


def scope_contains(outer: str, inner: str) -> bool:
    """Does a role assignment at ``outer`` apply to ``inner`` (the same scope or one of its ancestors)?"""
    outer_l, inner_l = outer.rstrip("/").lower(), inner.rstrip("/").lower()
    return outer_l in ("", "/") or inner_l == outer_l or inner_l.startswith(outer_l + "/")


class ArmGateway:
    def __init__(self, clients: AzureClients) -> None:
        self.clients = clients
        self._role_names: dict[
            str, str
        ] = {}  # role definition id (lower case) -> role name; they never change

    async def _call(self, operation: str, awaitable, *, none_if_missing: bool = False):
        try:
            return await awaitable
        except ResourceNotFoundError as exc:
            if none_if_missing:
                return None
            raise from_arm(exc, operation) from exc
        except Exception as exc:  # noqa: BLE001 - every SDK failure becomes an exomi error
            raise from_arm(exc, operation) from exc

    # ------------------------------------------------------------------ targets

    async def get_automation_account(self, ref: ResourceRef) -> TargetResource | None:
        client = self.clients.automation(ref.subscription_id)
        account = await self._call(
            "read Automation account",
            client.automation_account.get(ref.resource_group, ref.name),
            none_if_missing=True,
        )
        return None if account is None else _target(account)

    async def get_virtual_machine(self, ref: ResourceRef) -> TargetResource | None:
        client = self.clients.compute(ref.subscription_id)
        vm = await self._call(
            "read virtual machine",
            client.virtual_machines.get(ref.resource_group, ref.name),
            none_if_missing=True,
        )
        return None if vm is None else replace(_target(vm), os_type=vm_os_type(vm))

    async def get_user_assigned_identity(self, ref: ResourceRef) -> TargetResource | None:
        client = self.clients.msi(ref.subscription_id)
        uai = await self._call(
            "read user-assigned identity",
            client.user_assigned_identities.get(ref.resource_group, ref.name),
            none_if_missing=True,
        )
        if uai is None:
            return None
        info = IdentityInfo(uai.principal_id, uai.client_id, uai.id)
        return TargetResource(
            uai.id, uai.name, uai.location, dict(uai.tags or {}), None, {uai.id.lower(): info}
        )

    async def get_function_app(self, ref: ResourceRef) -> TargetResource | None:
        """A Microsoft.Web/sites resource, with its kind: the identity step refuses one that is no function
        app (a web app's kind is "app")."""
        client = self.clients.web(ref.subscription_id)
        site = await self._call(
            "read Function app", client.web_apps.get(ref.resource_group, ref.name), none_if_missing=True
        )
        return None if site is None else replace(_target(site), site_kind=(site.kind or "app").lower())

    async def get_scale_set(self, ref: ResourceRef) -> TargetResource | None:
        """A VM scale set, with its OS (its VM profile's) and orchestration mode."""
        client = self.clients.compute(ref.subscription_id)
        scale_set = await self._call(
            "read virtual machine scale set",
            client.virtual_machine_scale_sets.get(ref.resource_group, ref.name),
            none_if_missing=True,
        )
        if scale_set is None:
            return None
        mode = _text(getattr(scale_set.properties, "orchestration_mode", None)) or "Uniform"
        return replace(_target(scale_set), os_type=scale_set_os_type(scale_set), orchestration_mode=mode)

    async def scale_set_instances(self, ref: ResourceRef, mode: str) -> list[ScaleSetInstance]:
        """The set's instances now: a Uniform set lists them under itself; a Flexible set's are the VMs
        whose virtualMachineScaleSet.id names it (the VM list's one documented $filter)."""
        client = self.clients.compute(ref.subscription_id)
        found: list[ScaleSetInstance] = []
        try:
            if mode.lower() == "flexible":
                set_id = (
                    f"/subscriptions/{ref.subscription_id}/resourceGroups/{ref.resource_group}/providers/"
                    f"{TargetKind.SCALE_SET.value}/{ref.name}"
                )  # built from validated parts (shared.ids) only
                pager = client.virtual_machines.list(
                    ref.resource_group, filter=f"'virtualMachineScaleSet/id' eq '{set_id}'"
                )
                async for vm in pager:
                    if vm.name:
                        vm_ref = ResourceRef(ref.subscription_id, ref.resource_group, vm.name)
                        found.append(ScaleSetInstance(vm.name, None, vm_ref))
            else:
                async for instance in client.virtual_machine_scale_set_vms.list(ref.resource_group, ref.name):
                    if instance.name and instance.instance_id is not None:
                        found.append(ScaleSetInstance(instance.name, instance.instance_id, None))
        except Exception as exc:  # noqa: BLE001 - every SDK failure becomes an exomi error
            raise from_arm(exc, "list scale set instances") from exc
        return found

    async def get_target(self, kind: TargetKind, ref: ResourceRef) -> TargetResource | None:
        """A target of any supported kind, with its tags and identities; None when it does not exist."""
        if kind is TargetKind.AUTOMATION_ACCOUNT:
            return await self.get_automation_account(ref)
        if kind is TargetKind.SCALE_SET:
            return await self.get_scale_set(ref)
        if kind is TargetKind.VIRTUAL_MACHINE:
            return await self.get_virtual_machine(ref)
        if kind is TargetKind.FUNCTION_APP:
            return await self.get_function_app(ref)
        return await self.get_user_assigned_identity(ref)

    # ------------------------------------------------------------------ Azure RBAC (who may ask)

    async def roles_held(self, principal_id: str, resource_id: str, subscription_id: str) -> set[str]:
        """The names of the Azure roles ``principal_id`` holds on ``resource_id``, inherited assignments
        (resource group, subscription, management groups, root) included. ``assignedTo()`` also returns
        assignments below the scope, which do not apply to it and are left out; it includes the groups
        the principal is a member of (docs/POLICY.md)."""
        principal = validate_guid(principal_id, "principal_id")  # the only text that reaches the filter
        client = self.clients.authorization(subscription_id)
        operation = "list role assignments"
        names: set[str] = set()
        try:
            pager = client.role_assignments.list_for_scope(resource_id, filter=f"assignedTo('{principal}')")
            async for assignment in pager:
                if (
                    assignment.scope
                    and assignment.role_definition_id
                    and scope_contains(assignment.scope, resource_id)
                ):
                    names.add(await self._role_name(client, assignment.role_definition_id))
        except Exception as exc:  # noqa: BLE001 - every SDK failure becomes an exomi error
            raise from_arm(exc, operation) from exc
        return names

    async def _role_name(self, client: Any, role_definition_id: str) -> str:
        key = role_definition_id.lower()
        if key not in self._role_names:
            definition = await client.role_definitions.get_by_id(role_definition_id)
            self._role_names[key] = definition.role_name or role_definition_id.rsplit("/", 1)[-1]
        return self._role_names[key]

    # ------------------------------------------------------------------ modules (PowerShell 5.1)

    @staticmethod
    def _import_state(item: Any) -> ImportState:
        props = item.properties
        error = getattr(props, "error", None)
        message = getattr(error, "message", None) if error is not None else None
        return ImportState(
            item.name, getattr(props, "version", None), _text(props.provisioning_state) or "Unknown", message
        )

    async def _read_import(self, operation: str, awaitable) -> ImportState | None:
        item = await self._call(operation, awaitable, none_if_missing=True)
        return None if item is None else self._import_state(item)

    async def get_module(self, account: ResourceRef, name: str) -> ImportState | None:
        client = self.clients.automation(account.subscription_id)
        return await self._read_import(
            f"read module {name}", client.module.get(account.resource_group, account.name, name)
        )

    async def import_module(self, account: ResourceRef, name: str, version: str) -> ImportState:
        client = self.clients.automation(account.subscription_id)
        body: ModuleCreateOrUpdateParameters = {"properties": {"contentLink": _gallery_link(name, version)}}
        item = await self._call(
            f"import module {name} {version}",
            client.module.create_or_update(account.resource_group, account.name, name, body),
        )
        return self._import_state(item)

    # ------------------------------------------------------------------ Hybrid Runbook Worker groups

    async def get_hybrid_worker_group(self, account: ResourceRef, group: str) -> str | None:
        """The group's name as Azure spells it, or None when the account has no such group."""
        client = self.clients.automation(account.subscription_id)
        item = await self._call(
            f"read Hybrid Runbook Worker group {group}",
            client.hybrid_runbook_worker_group.get(account.resource_group, account.name, group),
            none_if_missing=True,
        )
        return None if item is None else str(item.name)

    async def list_hybrid_workers(self, account: ResourceRef, group: str) -> list[HybridWorker]:
        """The group's worker machines (``group`` as Azure spells it)."""
        client = self.clients.automation(account.subscription_id)
        found: list[HybridWorker] = []
        try:
            pager = client.hybrid_runbook_workers.list_by_hybrid_runbook_worker_group(
                account.resource_group, account.name, group
            )
            async for worker in pager:
                machine_id = str(worker.vm_resource_id or "")
                name = worker.worker_name or machine_id.rsplit("/", 1)[-1] or str(worker.name)
                found.append(HybridWorker(str(name), machine_id, str(worker.worker_type or "")))
        except Exception as exc:  # noqa: BLE001 - every SDK failure becomes an exomi error
            raise from_arm(exc, f"list the workers of Hybrid Runbook Worker group {group}") from exc
        return found

    # ------------------------------------------------------------------ runtime environments (PowerShell 7.x)

    async def get_runtime_environment(self, account: ResourceRef, environment: str) -> dict[str, Any] | None:
        client = self.clients.automation(account.subscription_id)
        item = await self._call(
            f"read runtime environment {environment}",
            client.runtime_environments.get(account.resource_group, account.name, environment),
            none_if_missing=True,
        )
        if item is None:
            return None
        runtime = item.properties.runtime if item.properties else None
        return {
            "name": item.name,
            "language": getattr(runtime, "language", None),
            "version": getattr(runtime, "version", None),
        }

    async def create_runtime_environment(
        self, account: ResourceRef, environment: str, version: str, location: str
    ) -> None:
        client = self.clients.automation(account.subscription_id)
        # The SDK's TrackedResource TypedDict lacks total=False, so it wrongly requires the optional tags.
        body: RuntimeEnvironmentBody = {  # type: ignore[typeddict-item]
            "location": location,
            "properties": {
                "runtime": {"language": "PowerShell", "version": version},
                "description": "Created by exomi for Exchange Online PowerShell runbooks.",
            },
        }
        await self._call(
            f"create runtime environment {environment}",
            client.runtime_environments.create(account.resource_group, account.name, environment, body),
        )

    async def get_package(self, account: ResourceRef, environment: str, name: str) -> ImportState | None:
        client = self.clients.automation(account.subscription_id)
        return await self._read_import(
            f"read package {name}",
            client.package.get(account.resource_group, account.name, environment, name),
        )

    async def import_package(
        self, account: ResourceRef, environment: str, name: str, version: str
    ) -> ImportState:
        client = self.clients.automation(account.subscription_id)
        body: PackageCreateOrUpdateParameters = {"properties": {"contentLink": _gallery_link(name, version)}}
        item = await self._call(
            f"import package {name} {version}",
            client.package.create_or_update(account.resource_group, account.name, environment, name, body),
        )
        return self._import_state(item)

    # ------------------------------------------------------------------ runbooks

    async def get_runbook(self, account: ResourceRef, name: str) -> RunbookState | None:
        client = self.clients.automation(account.subscription_id)
        runbook = await self._call(
            f"read runbook {name}",
            client.runbook.get(account.resource_group, account.name, name),
            none_if_missing=True,
        )
        if runbook is None:
            return None
        content = None
        state = _text(runbook.properties.state) or "New"
        if state.lower() == "published":
            content = await self._call(
                f"read runbook {name} content",
                client.runbook.get_content(account.resource_group, account.name, name),
                none_if_missing=True,
            )
        return RunbookState(
            runbook.name,
            state,
            getattr(runbook.properties, "runtime_environment", None),
            content,
            dict(runbook.tags or {}),
        )

    async def put_runbook(
        self,
        account: ResourceRef,
        name: str,
        *,
        location: str,
        runtime_environment: str | None,
        description: str,
    ) -> None:
        client = self.clients.automation(account.subscription_id)
        properties: RunbookCreateOrUpdateProperties = {
            "runbookType": "PowerShell",
            "description": description,
            "logProgress": False,
            "logVerbose": False,
        }
        if runtime_environment:
            properties["runtimeEnvironment"] = runtime_environment
        body: RunbookCreateOrUpdateParameters = {
            "location": location,
            "properties": properties,
            "tags": {MANAGED_BY_TAG: "exomi"},
        }
        await self._call(
            f"create runbook {name}",
            client.runbook.create_or_update(account.resource_group, account.name, name, body),
        )

    async def publish_runbook_content(self, account: ResourceRef, name: str, content: str) -> None:
        """Replaces the draft and publishes it (two short LROs)."""
        client = self.clients.automation(account.subscription_id)

        async def replace_and_publish() -> None:
            poller = await client.runbook_draft.begin_replace_content(
                account.resource_group, account.name, name, content
            )
            await poller.result()
            poller = await client.runbook.begin_publish(account.resource_group, account.name, name)
            await poller.result()

        await self._call(f"publish runbook {name}", replace_and_publish())

    async def delete_runbook(self, account: ResourceRef, name: str) -> bool:
        client = self.clients.automation(account.subscription_id)
        try:
            await client.runbook.delete(account.resource_group, account.name, name)
        except ResourceNotFoundError:
            return False
        except Exception as exc:  # noqa: BLE001
            raise from_arm(exc, f"delete runbook {name}") from exc
        return True

    async def runbooks_using(self, account: ResourceRef, environment: str) -> list[str]:
        """The runbooks of the account that run in this runtime environment."""
        client = self.clients.automation(account.subscription_id)
        names: list[str] = []
        try:
            async for runbook in client.runbook.list_by_automation_account(
                account.resource_group, account.name
            ):
                used = (
                    getattr(runbook.properties, "runtime_environment", None) if runbook.properties else None
                )
                if used and used.lower() == environment.lower() and runbook.name:  # listed: always named
                    names.append(runbook.name)
        except ResourceNotFoundError:
            return []
        except Exception as exc:  # noqa: BLE001
            raise from_arm(exc, "list runbooks") from exc
        return names

    async def delete_runtime_environment(self, account: ResourceRef, environment: str) -> bool:
        client = self.clients.automation(account.subscription_id)
        try:
            await client.runtime_environments.delete(account.resource_group, account.name, environment)
        except ResourceNotFoundError:
            return False
        except Exception as exc:  # noqa: BLE001
            raise from_arm(exc, f"delete runtime environment {environment}") from exc
        return True

    # ------------------------------------------------------------------ jobs

    async def start_job(self, account: ResourceRef, job_name: str, runbook: str) -> None:
        """Starts the published runbook (in the runtime environment the runbook names)."""
        client = self.clients.automation(account.subscription_id)
        body: JobCreateParameters = {
            "properties": {"runbook": {"name": runbook}, "parameters": {}, "runOn": ""}
        }
        await self._call(
            f"start job for runbook {runbook}",
            client.job.create(account.resource_group, account.name, job_name, body),
        )

    async def get_job(self, account: ResourceRef, job_name: str) -> JobState | None:
        client = self.clients.automation(account.subscription_id)
        job = await self._call(
            f"read job {job_name}",
            client.job.get(account.resource_group, account.name, job_name),
            none_if_missing=True,
        )
        if job is None:
            return None
        status = _text(job.properties.status) or "New"
        output = None
        if status.lower() == "completed":
            output = await self._call(
                f"read job {job_name} output",
                client.job.get_output(account.resource_group, account.name, job_name),
            )
        return JobState(job.name, status, job.properties.exception, output)

    # ------------------------------------------------------------------ VM Run Command

    @staticmethod
    def _run_command_polling() -> AsyncARMPolling:
        """Run Command answers 202 with Azure-AsyncOperation (a status) and Location (202 until done,
        then the result). The SDK's default reads the status, then the Location: two calls for the last
        look. Polling the Location alone sees the end and the output in one call (ARM's async operation
        contract; a 200 with the output straight away needs no polling)."""
        return AsyncARMPolling(0, lro_algorithms=[LocationPolling(), StatusCheckPolling()])

    async def start_run_command(
        self, vm: ResourceRef, script: list[str], command_id: str = "RunPowerShellScript"
    ) -> str:
        """Starts a Run Command (``RunPowerShellScript`` on Windows, ``RunShellScript`` on Linux) and
        returns its continuation token (the engine keeps it in state)."""
        client = self.clients.compute(vm.subscription_id)
        body: RunCommandInput = {"commandId": command_id, "script": script}
        poller = await self._call(
            "start Run Command",
            client.virtual_machines.begin_run_command(
                vm.resource_group, vm.name, body, polling=self._run_command_polling()
            ),
        )
        return poller.continuation_token()

    async def run_command_status(self, vm: ResourceRef, token: str) -> RunCommandOutcome | None:
        """One look at a started Run Command (its operation's status, no waiting): None while it still
        runs. The engine decides when to look again, not the SDK's fixed polling loop."""
        client = self.clients.compute(vm.subscription_id)
        poller = await self._call(
            "resume Run Command",
            client.virtual_machines.begin_run_command(
                # the body is not sent when resuming from a token, but the signature requires one
                vm.resource_group,
                vm.name,
                cast("RunCommandInput", {}),
                continuation_token=token,
                polling=self._run_command_polling(),
            ),
        )
        return await self._look_at_run_command(poller)

    async def start_instance_run_command(
        self, scale_set: ResourceRef, instance: ScaleSetInstance, script: list[str], command_id: str
    ) -> str:
        """Starts a Run Command on one instance of a scale set: a Uniform instance's own action, or the
        VM's for a Flexible set's instance. Returns its continuation token."""
        if instance.vm is not None:
            return await self.start_run_command(instance.vm, script, command_id)
        client = self.clients.compute(scale_set.subscription_id)
        body: RunCommandInput = {"commandId": command_id, "script": script}
        poller = await self._call(
            f"start Run Command on instance {instance.name}",
            client.virtual_machine_scale_set_vms.begin_run_command(
                scale_set.resource_group,
                scale_set.name,
                str(instance.instance_id),
                body,
                polling=self._run_command_polling(),
            ),
        )
        return poller.continuation_token()

    async def instance_run_command_status(
        self, scale_set: ResourceRef, instance: ScaleSetInstance, token: str
    ) -> RunCommandOutcome | None:
        """One look at a Run Command started on a scale set's instance (see run_command_status)."""
        if instance.vm is not None:
            return await self.run_command_status(instance.vm, token)
        client = self.clients.compute(scale_set.subscription_id)
        poller = await self._call(
            f"resume Run Command on instance {instance.name}",
            client.virtual_machine_scale_set_vms.begin_run_command(
                scale_set.resource_group,
                scale_set.name,
                str(instance.instance_id),
                cast("RunCommandInput", {}),
                continuation_token=token,
                polling=self._run_command_polling(),
            ),
        )
        return await self._look_at_run_command(poller)

    async def _look_at_run_command(self, poller: Any) -> RunCommandOutcome | None:
        method = poller.polling_method()
        try:
            if isinstance(method, AsyncLROBasePolling) and not method.finished():
                await method.update_status()
                if not method.finished():
                    return None
            result = await poller.result()  # finished: only the final GET of the result is left
        except HttpResponseError as exc:
            raise from_arm(exc, "Run Command") from exc
        except BadStatus as exc:
            # The Location answered an error (the command failed, or the VM went away): the ARM error it
            # carries is classified like any other answer.
            answer = getattr(getattr(method, "_pipeline_response", None), "http_response", None)
            if answer is None:
                raise Transient(f"Run Command status could not be read: {exc}") from exc
            raise from_arm(HttpResponseError(response=answer), "Run Command") from exc
        except BadResponse as exc:
            raise Transient(f"Run Command status could not be read: {exc}") from exc
        stdout, stderr = "", ""
        for status in result.value or []:
            code = (status.code or "").lower()
            if "stdout" in code:
                stdout = status.message or ""
            elif "stderr" in code:
                stderr = status.message or ""
            elif code.startswith("provisioningstate/"):  # RunShellScript: both streams in one message
                return shell_outcome(status.message or "")
        return RunCommandOutcome(stdout, stderr)
