"""Which steps a request goes through, by operation and target kind, and in which order."""

from __future__ import annotations

from shared.engine.step import Step
from shared.engine.steps_automation import Modules, Runbook
from shared.engine.steps_directory import AppRoleGrant, EntraRole, ExchangePrincipal, PrincipalVisible
from shared.engine.steps_identity import ResolveIdentity
from shared.engine.steps_revoke import (
    RemoveAppRole,
    RemoveEntraRole,
    RemoveRunbook,
    RemoveRuntimeEnvironment,
    RevokeScope,
)
from shared.engine.steps_verify import Verify
from shared.engine.steps_vm import VmModules
from shared.ids import TargetKind
from shared.models import Operation

DIRECTORY_STEPS: list[Step] = [
    ResolveIdentity(),
    PrincipalVisible(),
    ExchangePrincipal(),
    AppRoleGrant(),
    EntraRole(),
]


def steps_for(operation: Operation, kind: TargetKind) -> list[Step]:
    if operation is Operation.REVOKE:
        return [
            RevokeScope(),
            RemoveRunbook(),
            RemoveRuntimeEnvironment(),
            RemoveAppRole(),
            RemoveEntraRole(),
        ]
    if kind is TargetKind.AUTOMATION_ACCOUNT:
        return [*DIRECTORY_STEPS, Modules(), Runbook(), Verify()]
    if kind is TargetKind.VIRTUAL_MACHINE:
        return [*DIRECTORY_STEPS, VmModules(), Verify()]
    # A user-assigned identity on its own has nowhere to run a test; the resources that use it verify it.
    return list(DIRECTORY_STEPS)


def dependencies(steps: list[Step]) -> dict[str, set[str]]:
    """Each step's prerequisites within this plan; verification comes after everything else."""
    names = [s.name for s in steps]
    result = {}
    for step in steps:
        if isinstance(step, Verify):
            result[step.name] = set(names) - {step.name}
        else:
            result[step.name] = {d for d in step.after if d in names}
    return result
