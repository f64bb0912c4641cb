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
AUTOMATION = frozenset({"2022-08-08", "2023-05-15-preview", "2023-11-01", "2024-10-23"})
# Runtime environments and their packages: preview/2023-05-15-preview (runtimeEnvironment.json, package.json)
# and stable/2024-10-23; their shapes are the same in both.
AUTOMATION_RUNTIME_ENVIRONMENTS = frozenset({"2023-05-15-preview", "2024-10-23"})
# Agent-based worker groups (hybridRunbookWorkerGroup.json of stable/2015-10-31, 2019-06-01 and
# preview/2020-01-13-preview): GET, PATCH, DELETE and list only, the group's fields at the top level with its
# machines inline (``hybridRunbookWorkers``). stable/2021-06-22 adds PUT, ``type`` and ``systemData`` and the
# workers as resources (hybridRunbookWorker.json), still flat; stable/2022-02-22 moves the fields under
# ``properties`` and drops the inline list.
AUTOMATION_AGENT_WORKER_GROUPS = frozenset({"2015-10-31", "2019-06-01", "2020-01-13-preview"})
_FLAT_WORKER_GROUPS = AUTOMATION_AGENT_WORKER_GROUPS | {"2021-06-22"}
# A worker group's or worker's PUT answers 200 only (no 201) in stable/2021-06-22's hybridRunbookWorkerGroup.json
# and hybridRunbookWorker.json and in 2022-02-22's hybridRunbookWorkerGroup.json.
AUTOMATION_HYBRID_PUT_200 = frozenset({"2021-06-22", "2022-02-22"})
AUTOMATION_BY_TYPE: dict[str, frozenset[str]] = {
    # account.json: stable/2015-10-31, 2019-06-01, 2021-06-22; preview/2020-01-13-preview, 2023-05-15-preview.
    "automationAccounts": AUTOMATION | {"2015-10-31", "2019-06-01", "2020-01-13-preview", "2021-06-22"},
    # module.json: stable/2015-10-31, 2019-06-01; preview/2020-01-13-preview.
    "automationAccounts/modules": AUTOMATION | {"2015-10-31", "2019-06-01", "2020-01-13-preview"},
    # runbook.json: stable/2015-10-31, 2018-06-30, 2019-06-01.
    "automationAccounts/runbooks": AUTOMATION | {"2015-10-31", "2018-06-30", "2019-06-01"},
    # job.json: stable/2015-10-31, 2019-06-01; preview/2017-05-15-preview.
    "automationAccounts/jobs": AUTOMATION | {"2015-10-31", "2017-05-15-preview", "2019-06-01"},
    # hybridRunbookWorkerGroup.json: the agent-based versions, stable/2021-06-22, 2022-02-22.
    "automationAccounts/hybridRunbookWorkerGroups": AUTOMATION | _FLAT_WORKER_GROUPS | {"2022-02-22"},
    # hybridRunbookWorker.json: stable/2021-06-22 (2022-02-22's tag takes that one).
    "automationAccounts/hybridRunbookWorkerGroups/hybridRunbookWorkers": AUTOMATION | {"2021-06-22"},
}
# What a version lacks. Automation: identity and the network/encryption settings first appear in
# preview/2020-01-13-preview/account.json, disableLocalAuth and automationHybridServiceUrl in
# stable/2021-06-22/account.json; a runbook's runbookType PowerShell72 in stable/2023-11-01/runbook.json and
# Python in preview/2023-05-15-preview (2022-08-08's enum ends at Python3; 2024-10-23 has both); a runbook's
# runtimeEnvironment and systemData and a job's jobRuntimeEnvironment only where runtime environments are.
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
# What older compute.json versions lack (VirtualMachine, VirtualMachineScaleSet and their VirtualMachineIdentity):
# stable/2015-06-15 has no identity (nor vmId); 2016-03-30 to 2017-03-30 have a system-assigned identity only
# (type enum 'SystemAssigned'); 2017-12-01 and 2018-04-01 name user-assigned identities in a list,
# ``identityIds``; the ``userAssignedIdentities`` map is from 2018-06-01. A scale set's uniqueId and a VM's
# zones from 2017-03-30, timeCreated from 2021-11-01, etag from 2023-09-01 (ComputeRP/stable/2023-09-01).
_COMPUTE_IDENTITY = COMPUTE - {"2015-06-15"}
_COMPUTE_USER_IDENTITIES = frozenset(v for v in COMPUTE if v >= "2017-12-01")
_COMPUTE_IDENTITY_IDS = frozenset({"2017-12-01", "2018-04-01"})
_COMPUTE_UNIQUE_ID = frozenset(v for v in COMPUTE if v >= "2017-03-30")
_COMPUTE_TIME_CREATED = frozenset(v for v in COMPUTE if v >= "2021-11-01")
_COMPUTE_ETAG = frozenset(v for v in COMPUTE if v >= "2023-09-01")
# Before 2018-04-01 (stable/2017-03-30 and 2017-12-01/runCommands.json) a Run Command's result is an operation
# status (RunCommandResult: OperationStatusResponse + properties.output, the statuses as a list); from
# 2018-04-01 it is ``{"value": [statuses]}``.
COMPUTE_RUN_COMMAND_AS_STATUS = frozenset({"2017-03-30", "2017-12-01"})
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
# Microsoft.EventGrid systemTopics and their eventSubscriptions: the Microsoft.EventGrid/{stable,preview}/{v}/
# EventGrid.json versions that define them (from preview/2020-04-01-preview; stable/2020-06-01 has none).
# Only 2020-04-01-preview's shapes differ from 2025-02-15 in what the emulator answers: its SystemTopic has no
# identity, its event subscription filter no enableAdvancedFilteringOnArrays and no IsNotNull,
# IsNullOrUndefined, NumberInRange, NumberNotInRange, StringNotBeginsWith, StringNotContains or
# StringNotEndsWith operators (those first appear in preview/2020-10-15-preview).
EVENTGRID = frozenset(
    {
        "2020-04-01-preview",
        "2020-10-15-preview",
        "2021-06-01-preview",
        "2021-10-15-preview",
        "2021-12-01",
        "2022-06-15",
        "2023-06-01-preview",
        "2023-12-15-preview",
        "2024-06-01-preview",
        "2024-12-15-preview",
        "2025-02-15",
        "2025-04-01-preview",
        "2025-07-15-preview",
    }
)
_EVENTGRID_2020_10 = EVENTGRID - {"2020-04-01-preview"}


@dataclass(frozen=True)
class Field:
    """A property (``path``; ``*`` steps into each list item) only ``versions`` define: other versions
    neither show it nor read it from a request body."""

    path: tuple[str, ...]
    versions: frozenset[str]

    def applies(self, version: str) -> bool:
        return version not in self.versions


@dataclass(frozen=True)
class Values:
    """Enum values of the request property ``path`` only ``versions`` define: another version refuses them."""

    path: tuple[str, ...]
    values: frozenset[str]  # lower case
    versions: frozenset[str]
    choices: tuple[str, ...]  # every value of the newest version, in the spec's order
    error: tuple[str, str]  # ARM error code, message with {value} and {supported}

    def applies(self, version: str) -> bool:
        return version not in self.versions


@dataclass(frozen=True)
class Nested:
    """``keys`` sit under ``properties`` only in ``versions``; other versions have them at the top level
    (answers are hoisted, a request's top-level keys are read as its properties)."""

    keys: tuple[str, ...]
    versions: frozenset[str]

    def applies(self, version: str) -> bool:
        return version not in self.versions


@dataclass(frozen=True)
class KeyList:
    """At ``at``, the map ``path``.``map_key`` (keyed by resource id) is a list of its keys, ``list_key``."""

    path: tuple[str, ...]
    map_key: str
    list_key: str
    at: frozenset[str]

    def applies(self, version: str) -> bool:
        return version in self.at


Rule = Field | Values | Nested | KeyList


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
_PYTHON2_RUNBOOKS = AUTOMATION | {"2019-06-01"}
_POWERSHELL_7_RUNBOOKS = frozenset({"2023-11-01", "2024-10-23"})  # PowerShell7 goes with PowerShell72
_IDENTITY_TYPES = ("SystemAssigned", "UserAssigned", "SystemAssigned, UserAssigned", "None")
# *guess*: Compute's text for an enum value the version does not have.
_IDENTITY_TYPE_ERROR = (
    "InvalidParameter",
    "The value '{value}' of parameter 'identity.type' is not valid in this api-version. Allowed values: "
    "{supported}.",
)
_COMPUTE_IDENTITY_RULES: tuple[Rule, ...] = (
    *_fields(_COMPUTE_IDENTITY, "identity"),
    *_fields(_COMPUTE_USER_IDENTITIES, "identity.userAssignedIdentities"),
    KeyList(("identity",), "userAssignedIdentities", "identityIds", _COMPUTE_IDENTITY_IDS),
    Values(
        ("identity", "type"),
        frozenset({"userassigned", "systemassigned, userassigned", "systemassigned,userassigned", "none"}),
        _COMPUTE_USER_IDENTITIES | {"2015-06-15"},  # 2015-06-15 reads no identity at all
        _IDENTITY_TYPES,
        _IDENTITY_TYPE_ERROR,
    ),
    *_fields(_COMPUTE_TIME_CREATED, "properties.timeCreated"),
    *_fields(_COMPUTE_ETAG, "etag"),
)
_FILTER_OPERATORS = (
    *("NumberIn", "NumberNotIn", "NumberLessThan", "NumberGreaterThan", "NumberLessThanOrEquals"),
    *("NumberGreaterThanOrEquals", "BoolEquals", "StringIn", "StringNotIn", "StringBeginsWith"),
    *("StringEndsWith", "StringContains", "NumberInRange", "NumberNotInRange", "StringNotBeginsWith"),
    *("StringNotEndsWith", "StringNotContains", "IsNullOrUndefined", "IsNotNull"),
)
# *guess*: the text; InvalidRequest is what Event Grid answers for invalid content (eventgrid_topics.py).
_FILTER_OPERATOR_ERROR = (
    "InvalidRequest",
    "The advanced filter operatorType '{value}' is not supported in this api-version. Supported: {supported}.",
)

# Per provider/resource type (as routes name them): what differs between the versions served. Fields are
# dropped before a Nested rule hoists what is left; a request is read in the same order.
SHAPES: dict[str, tuple[Rule, ...]] = {
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
        *_fields(AUTOMATION_RUNTIME_ENVIRONMENTS, "properties.runtimeEnvironment", "systemData"),
        Values(
            ("properties", "runbookType"),
            frozenset({"python2", "python3"}),
            _PYTHON2_RUNBOOKS,
            _RUNBOOK_TYPES,
            _RUNBOOK_TYPE_ERROR,
        ),
        Values(
            ("properties", "runbookType"),
            frozenset({"powershell7", "powershell72"}),
            _POWERSHELL_7_RUNBOOKS,
            _RUNBOOK_TYPES,
            _RUNBOOK_TYPE_ERROR,
        ),
        Values(
            ("properties", "runbookType"),
            frozenset({"python"}),
            AUTOMATION_RUNTIME_ENVIRONMENTS,
            _RUNBOOK_TYPES,
            _RUNBOOK_TYPE_ERROR,
        ),
    ),
    "Microsoft.Automation/automationAccounts/jobs": _fields(
        AUTOMATION_RUNTIME_ENVIRONMENTS, "properties.jobRuntimeEnvironment"
    ),
    "Microsoft.Automation/automationAccounts/hybridRunbookWorkerGroups": (
        *_fields(_FLAT_WORKER_GROUPS, "properties.hybridRunbookWorkers"),
        *_fields(
            AUTOMATION_BY_TYPE["automationAccounts/hybridRunbookWorkerGroups"]
            - AUTOMATION_AGENT_WORKER_GROUPS,
            "type",
            "systemData",
        ),
        Nested(
            ("credential", "groupType", "hybridRunbookWorkers"),
            AUTOMATION_BY_TYPE["automationAccounts/hybridRunbookWorkerGroups"] - _FLAT_WORKER_GROUPS,
        ),
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
    "Microsoft.Compute/virtualMachines": (
        *_COMPUTE_IDENTITY_RULES,
        *_fields(_COMPUTE_IDENTITY, "properties.vmId"),
    ),
    "Microsoft.Compute/virtualMachineScaleSets": (
        *_fields(_ORCHESTRATION_MODE, "properties.orchestrationMode"),
        *_COMPUTE_IDENTITY_RULES,
        *_fields(_COMPUTE_UNIQUE_ID, "properties.uniqueId"),
    ),
    "Microsoft.EventGrid/systemTopics": _fields(_EVENTGRID_2020_10, "identity"),
    "Microsoft.EventGrid/systemTopics/eventSubscriptions": (
        *_fields(_EVENTGRID_2020_10, "properties.filter.enableAdvancedFilteringOnArrays"),
        Values(
            ("properties", "filter", "advancedFilters", "*", "operatorType"),
            frozenset(
                {
                    "numberinrange",
                    "numbernotinrange",
                    "stringnotbeginswith",
                    "stringnotendswith",
                    "stringnotcontains",
                    "isnullorundefined",
                    "isnotnull",
                }
            ),
            _EVENTGRID_2020_10,
            _FILTER_OPERATORS,
            _FILTER_OPERATOR_ERROR,
        ),
    ),
}


def shape_rules(provider: str, resource_type: str, version: str) -> tuple[Rule, ...]:
    """The rules that change what ``version`` reads and writes for this type (none: the newest shape)."""
    rules = SHAPES.get(f"{provider}/{resource_type}", ())
    return tuple(r for r in rules if r.applies(version))


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


def _values(node: Any, path: tuple[str, ...]) -> list[Any]:
    """What sits at ``path`` (``*`` stepping into each list item)."""
    if not path:
        return [node]
    head, rest = path[0], path[1:]
    if head == "*":
        return [v for item in (node if isinstance(node, list) else ()) for v in _values(item, rest)]
    return _values(node[head], rest) if isinstance(node, dict) and head in node else []


def _nest(rule: Nested, body: Any) -> None:
    """A flat version's request: its top-level ``keys`` are the properties (its own ``properties`` is not read)."""
    if not isinstance(body, dict):
        return
    body.pop("properties", None)
    properties = {key: body.pop(key) for key in rule.keys if key in body}
    if properties:
        body["properties"] = properties


def _hoist(rule: Nested, item: Any) -> None:
    properties = item.get("properties") if isinstance(item, dict) else None
    if isinstance(properties, dict):
        for key in rule.keys:
            if key in properties:
                item[key] = properties.pop(key)
        if not properties:
            item.pop("properties")


def _keys_as_list(rule: KeyList, item: Any) -> None:
    for node in _values(item, rule.path):
        if isinstance(node, dict) and isinstance(node.get(rule.map_key), dict):
            node[rule.list_key] = list(node.pop(rule.map_key))


def _list_as_keys(rule: KeyList, body: Any) -> None:
    for node in _values(body, rule.path):
        if isinstance(node, dict):
            node.pop(rule.map_key, None)  # the version has no such map
            ids = node.pop(rule.list_key, None)
            if isinstance(ids, list):
                node[rule.map_key] = {i: {} for i in ids if isinstance(i, str)}


def read_request(rules: tuple[Rule, ...], body: Any) -> None:
    """Refuses values the version does not have, then reads the body as that version's model does: what it
    does not define is dropped, what it places elsewhere is moved to where handlers look."""
    for rule in rules:
        if not isinstance(rule, Values):
            continue
        for value in _values(body, rule.path):
            if isinstance(value, str) and value.lower() in rule.values:
                withheld = {
                    v for r in rules if isinstance(r, Values) and r.path == rule.path for v in r.values
                }
                supported = ", ".join(c for c in rule.choices if c.lower() not in withheld)
                code, message = rule.error
                raise ArmError(400, code, message.format(value=value, supported=supported))
    for rule in rules:
        if isinstance(rule, Nested):
            _nest(rule, body)
        elif isinstance(rule, KeyList):
            _list_as_keys(rule, body)
    for rule in rules:
        if isinstance(rule, Field):
            _drop(body, rule.path)


def render(rules: tuple[Rule, ...], body: Any) -> Any:
    """An answer in the version's shape: one resource, or a list page (``value``)."""
    items = body.get("value") if isinstance(body, dict) and isinstance(body.get("value"), list) else [body]
    for item in items:
        for rule in rules:
            if isinstance(rule, Field):
                _drop(item, rule.path)
        for rule in rules:
            if isinstance(rule, Nested):
                _hoist(rule, item)
            elif isinstance(rule, KeyList):
                _keys_as_list(rule, item)
    return body
