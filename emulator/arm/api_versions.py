"""api-versions each emulated resource provider accepts: the stable (and, where a client sends one,
preview) versions azure-rest-api-specs publishes for the resource types served, answered in the
shape the emulator knows (the pinned SDKs' version), less what an older version does not define (``SHAPES``).
Sources: emulator/README.md, "api-versions"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emulator.http import ArmError

# specification/resources/resource-manager/Microsoft.Resources/stable/{v}/resources.json (resource
# groups, resources, tags, tagNames, providers); the Tags API is in every one from 2019-10-01.
RESOURCES = frozenset(
    {
        "2019-10-01",
        "2020-06-01",
        "2020-08-01",
        "2020-10-01",
        "2021-01-01",
        "2021-04-01",
        "2022-09-01",
        "2024-03-01",
        "2024-07-01",
        "2024-11-01",
        "2025-01-01",
        "2025-04-01",
    }
)
# .../Microsoft.Resources/stable/{v}/subscriptions.json (subscriptions, locations).
SUBSCRIPTIONS = frozenset({"2016-06-01", "2020-01-01", "2021-01-01", "2022-12-01", "2024-11-01"})
# specification/automation/resource-manager/Microsoft.Automation/{stable,preview}/{v}/ and the readme's tags
# (which file each version takes). A type is served at the versions whose folder defines it.
AUTOMATION = frozenset({"2022-08-08", "2023-11-01", "2024-10-23"})
# Runtime environments and their packages are new in 2024-10-23.
AUTOMATION_RUNTIME_ENVIRONMENTS = frozenset({"2024-10-23"})
AUTOMATION_BY_TYPE: dict[str, frozenset[str]] = {
    # account.json: stable/2015-10-31, 2019-06-01, 2021-06-22; preview/2020-01-13-preview.
    "automationAccounts": AUTOMATION | {"2015-10-31", "2019-06-01", "2020-01-13-preview", "2021-06-22"},
    # module.json: stable/2015-10-31, 2019-06-01; preview/2020-01-13-preview.
    "automationAccounts/modules": AUTOMATION | {"2015-10-31", "2019-06-01", "2020-01-13-preview"},
    # runbook.json: stable/2015-10-31, 2018-06-30, 2019-06-01.
    "automationAccounts/runbooks": AUTOMATION | {"2015-10-31", "2018-06-30", "2019-06-01"},
    # job.json: stable/2015-10-31, 2019-06-01; preview/2017-05-15-preview.
    "automationAccounts/jobs": AUTOMATION | {"2015-10-31", "2017-05-15-preview", "2019-06-01"},
}
# What a version lacks. Automation: identity and the network/encryption settings first appear in
# preview/2020-01-13-preview/account.json, disableLocalAuth and automationHybridServiceUrl in
# stable/2021-06-22/account.json; runbook types Python2/Python3 in stable/2019-06-01/runbook.json,
# PowerShell7x/Python in 2022-08-08; a runbook's runtimeEnvironment and a job's jobRuntimeEnvironment
# name the runtime environments of 2024-10-23.
_ACCOUNT_IDENTITY = AUTOMATION | {"2020-01-13-preview", "2021-06-22"}
_ACCOUNT_2021 = AUTOMATION | {"2021-06-22"}
# Microsoft.Authorization role assignments: the versions azure-mgmt-authorization 4.0.0's multi-API client
# serves them at (generated from .../Microsoft.Authorization/{stable,preview}/{v}/authorization-
# RoleAssignmentsCalls.json); its per-version models say which properties each has.
AUTHORIZATION = frozenset(
    {
        "2015-07-01",
        "2018-01-01-preview",
        "2018-09-01-preview",
        "2020-04-01-preview",
        "2020-10-01-preview",
        "2022-04-01",
    }
)
# Role definitions: 2015-07-01, 2018-01-01-preview, 2022-04-01 and 2022-05-01-preview
# (authorization-RoleDefinitionsCalls.json), which azure-cli 2.91 reads them with.
AUTHORIZATION_ROLE_DEFINITIONS = frozenset(
    {"2015-07-01", "2018-01-01-preview", "2022-04-01", "2022-05-01-preview"}
)
_PRINCIPAL_TYPE = frozenset({"2018-09-01-preview", "2020-04-01-preview", "2020-10-01-preview", "2022-04-01"})
_CONDITIONS = frozenset({"2020-04-01-preview", "2020-10-01-preview", "2022-04-01"})
_DATA_ACTIONS = AUTHORIZATION_ROLE_DEFINITIONS - {"2015-07-01"}
_DEFINITION_AUDIT = frozenset({"2022-04-01", "2022-05-01-preview"})
# specification/msi/resource-manager/Microsoft.ManagedIdentity/ManagedIdentity/{stable,preview}/{v}/
# ManagedIdentity.json; azure-cli 2.91 sends 2025-05-31-preview.
MANAGED_IDENTITY = frozenset(
    {
        "2018-11-30",
        "2021-09-30-preview",
        "2022-01-31-preview",
        "2023-01-31",
        "2023-07-31-preview",
        "2024-11-30",
        "2025-01-31-preview",
        "2025-05-31-preview",
        "2026-04-30",
        "2026-05-31",
    }
)
# Microsoft.Compute virtualMachines and virtualMachineScaleSets: stable/{v}/compute.json (2015-06-15 to
# 2021-11-01, preview/2016-04-30-preview) and ComputeRP/stable/{v}/virtualMachine.json,
# virtualMachineScaleSet.json (2022-03-01 on).
COMPUTE = frozenset(
    {
        "2015-06-15",
        "2016-03-30",
        "2016-04-30-preview",
        "2017-03-30",
        "2017-12-01",
        "2018-04-01",
        "2018-06-01",
        "2018-10-01",
        "2019-03-01",
        "2019-07-01",
        "2019-12-01",
        "2020-06-01",
        "2020-12-01",
        "2021-03-01",
        "2021-04-01",
        "2021-07-01",
        "2021-11-01",
        "2022-03-01",
        "2022-08-01",
        "2022-11-01",
        "2023-03-01",
        "2023-07-01",
        "2023-09-01",
        "2024-03-01",
        "2024-07-01",
        "2024-11-01",
        "2025-04-01",
        "2025-11-01",
        "2026-04-01",
    }
)
# POST .../virtualMachines/{vm}/runCommand first appears in stable/2017-03-30/runCommands.json, the scale set
# instances' one in stable/2018-04-01/runCommands.json (2017-12-01's has only the VM's).
COMPUTE_RUN_COMMAND_ACTION = frozenset(v for v in COMPUTE if v >= "2017-03-30")
COMPUTE_INSTANCE_RUN_COMMAND_ACTION = frozenset(v for v in COMPUTE if v >= "2018-04-01")
# Managed Run Commands of scale set instances (.../virtualMachines/{instanceId}/runCommands/{name}) from
# 2020-06-01 (azure-mgmt-compute's v2020_06_01 is the first with VirtualMachineScaleSetVMRunCommandsOperations).
COMPUTE_RUN_COMMANDS = frozenset(v for v in COMPUTE if v >= "2020-06-01")
# A scale set's orchestrationMode (Uniform/Flexible) from 2020-12-01: stable/2020-06-01/compute.json's
# VirtualMachineScaleSetProperties has none; azure-mgmt-compute's v2020_12_01 has the OrchestrationMode enum.
_ORCHESTRATION_MODE = frozenset(v for v in COMPUTE if v >= "2020-12-01")
# Microsoft.Web/sites: Microsoft.Web/stable/{v}/WebApps.json; the shapes follow azure-mgmt-web 11.0.1 (2025-05-01).
WEB = frozenset(
    {
        "2016-08-01",
        "2018-02-01",
        "2018-11-01",
        "2019-08-01",
        "2020-06-01",
        "2020-09-01",
        "2020-10-01",
        "2020-12-01",
        "2021-01-01",
        "2021-01-15",
        "2021-02-01",
        "2021-03-01",
        "2022-03-01",
        "2022-09-01",
        "2023-01-01",
        "2023-12-01",
        "2024-04-01",
        "2024-11-01",
        "2025-05-01",
    }
)
# Microsoft.EventGrid systemTopics and their eventSubscriptions: stable/2022-06-15/EventGrid.json (its
# SystemTopics_* examples) and 2025-02-15, what azure-mgmt-eventgrid 10.4.0 sends.
EVENTGRID = frozenset({"2022-06-15", "2025-02-15"})


@dataclass(frozen=True)
class Field:
    """A property (``path``; ``*`` steps into each list item) only ``versions`` define: other versions
    neither show it nor read it from a request body."""

    path: tuple[str, ...]
    versions: frozenset[str]


@dataclass(frozen=True)
class Values:
    """Enum values of the request property ``path`` only ``versions`` define: another version refuses them."""

    path: tuple[str, ...]
    values: frozenset[str]  # lower case
    versions: frozenset[str]
    choices: tuple[str, ...]  # every value of the newest version, in the spec's order
    error: tuple[str, str]  # ARM error code, message with {value} and {supported}


def _fields(versions: frozenset[str], *paths: str) -> tuple[Field, ...]:
    return tuple(Field(tuple(p.split(".")), versions) for p in paths)


_RUNBOOK_TYPES = (
    *("Script", "Graph", "PowerShellWorkflow", "PowerShell", "GraphPowerShellWorkflow", "GraphPowerShell"),
    *("Python2", "Python3", "PowerShell7", "PowerShell72", "Python"),
)
# automation_runbooks.py's text for a type it does not know (*guess*).
_RUNBOOK_TYPE_ERROR = (
    "BadRequest",
    "Invalid runbook type '{value}'. The supported runbook types are: {supported}.",
)
_PYTHON_RUNBOOKS = AUTOMATION | {"2019-06-01"}

# Per provider/resource type (as routes name them): what differs between the versions served.
SHAPES: dict[str, tuple[Field | Values, ...]] = {
    "Microsoft.Automation/automationAccounts": (
        *_fields(
            _ACCOUNT_IDENTITY,
            "identity",
            "properties.encryption",
            "properties.privateEndpointConnections",
            "properties.publicNetworkAccess",
        ),
        *_fields(
            _ACCOUNT_2021,
            "systemData",
            "properties.disableLocalAuth",
            "properties.automationHybridServiceUrl",
        ),
    ),
    "Microsoft.Automation/automationAccounts/runbooks": (
        *_fields(AUTOMATION_RUNTIME_ENVIRONMENTS, "properties.runtimeEnvironment"),
        *_fields(AUTOMATION, "systemData"),
        Values(
            ("properties", "runbookType"),
            frozenset({"python2", "python3"}),
            _PYTHON_RUNBOOKS,
            _RUNBOOK_TYPES,
            _RUNBOOK_TYPE_ERROR,
        ),
        Values(
            ("properties", "runbookType"),
            frozenset({"powershell7", "powershell72", "python"}),
            AUTOMATION,
            _RUNBOOK_TYPES,
            _RUNBOOK_TYPE_ERROR,
        ),
    ),
    "Microsoft.Automation/automationAccounts/jobs": _fields(
        AUTOMATION_RUNTIME_ENVIRONMENTS, "properties.jobRuntimeEnvironment"
    ),
    "Microsoft.Authorization/roleAssignments": (
        *_fields(_PRINCIPAL_TYPE, "properties.principalType"),
        *_fields(
            _CONDITIONS,
            "properties.condition",
            "properties.conditionVersion",
            "properties.description",
            "properties.createdOn",
            "properties.updatedOn",
            "properties.createdBy",
            "properties.updatedBy",
            "properties.delegatedManagedIdentityResourceId",
        ),
    ),
    "Microsoft.Authorization/roleDefinitions": (
        *_fields(
            _DATA_ACTIONS, "properties.permissions.*.dataActions", "properties.permissions.*.notDataActions"
        ),
        *_fields(
            _DEFINITION_AUDIT,
            "properties.createdOn",
            "properties.updatedOn",
            "properties.createdBy",
            "properties.updatedBy",
        ),
    ),
    "Microsoft.Compute/virtualMachineScaleSets": _fields(_ORCHESTRATION_MODE, "properties.orchestrationMode"),
}


def shape_rules(provider: str, resource_type: str, version: str) -> tuple[Field | Values, ...]:
    """The rules that change what ``version`` reads and writes for this type (none: the newest shape)."""
    rules = SHAPES.get(f"{provider}/{resource_type}", ())
    return tuple(r for r in rules if version not in r.versions)


def _drop(node: Any, path: tuple[str, ...]) -> None:
    if not path:
        return
    head, rest = path[0], path[1:]
    if head == "*":
        for item in node if isinstance(node, list) else ():
            _drop(item, rest)
    elif isinstance(node, dict):
        if not rest:
            node.pop(head, None)
        elif head in node:
            _drop(node[head], rest)


def _lookup(node: Any, path: tuple[str, ...]) -> Any:
    for step in path:
        if not isinstance(node, dict):
            return None
        node = node.get(step)
    return node


def read_request(rules: tuple[Field | Values, ...], body: Any) -> None:
    """Refuses values the version does not have, then drops the properties it does not define (an older
    client's body read as that version's model reads it)."""
    for rule in rules:
        value = _lookup(body, rule.path) if isinstance(rule, Values) else None
        if isinstance(rule, Values) and isinstance(value, str) and value.lower() in rule.values:
            withheld = {v for r in rules if isinstance(r, Values) and r.path == rule.path for v in r.values}
            supported = ", ".join(c for c in rule.choices if c.lower() not in withheld)
            code, message = rule.error
            raise ArmError(400, code, message.format(value=value, supported=supported))
    for rule in rules:
        if isinstance(rule, Field):
            _drop(body, rule.path)


def render(rules: tuple[Field | Values, ...], body: Any) -> Any:
    """An answer in the version's shape: one resource, or a list page (``value``)."""
    items = body.get("value") if isinstance(body, dict) and isinstance(body.get("value"), list) else [body]
    for item in items:
        for rule in rules:
            if isinstance(rule, Field):
                _drop(item, rule.path)
    return body
