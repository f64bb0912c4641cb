"""Which steps a request goes through, by operation and target kind, and what each one waits for.

One plan serves everything that walks the steps: ``Engine.advance`` (which starts a step the moment its
own prerequisites are done), ``plan`` and ``diagnose`` (which observe in the same order). The edges are
the steps' own ``after`` declarations, kept to real data dependencies: the runbook is published while
the modules import (only the verification job needs them), and verification waits for the grants, the
modules and the runbook.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from graphlib import TopologicalSorter

from shared.engine.step import Step
from shared.engine.steps_automation import Modules, Runbook, RuntimeEnvironment
from shared.engine.steps_directory import AppRoleGrant, EntraRole, ExchangePrincipal, PrincipalVisible
from shared.engine.steps_function_app import FunctionAppSetupStep
from shared.engine.steps_hybrid_worker import HybridWorkerSetupStep
from shared.engine.steps_identity import ResolveIdentity
from shared.engine.steps_revoke import (
    RemoveAppRole,
    RemoveEntraRole,
    RemoveRunbook,
    RemoveRuntimeEnvironment,
    RevokeScope,
)
from shared.engine.steps_scale_set import ScaleSetModules, ScaleSetVerify
from shared.engine.steps_verify import Verify
from shared.engine.steps_vm import VmModules
from shared.ids import TargetKind
from shared.models import Operation

DIRECTORY_STEPS: tuple[Step, ...] = (
    ResolveIdentity(),
    PrincipalVisible(),
    ExchangePrincipal(),
    AppRoleGrant(),
    EntraRole(),
)
REVOKE_STEPS: tuple[Step, ...] = (
    RevokeScope(),
    RemoveRunbook(),
    RemoveRuntimeEnvironment(),
    RemoveAppRole(),
    RemoveEntraRole(),
)
AUTOMATION_STEPS: tuple[Step, ...] = (
    *DIRECTORY_STEPS,
    RuntimeEnvironment(),
    Modules(),
    Runbook(),
    Verify(),
)
# A user-assigned identity on its own has nowhere to run a test; the resources that use it verify it.
VM_STEPS: tuple[Step, ...] = (*DIRECTORY_STEPS, VmModules(), Verify())
# A scale set: the modules on every instance (per-instance Run Command), the test where they were installed.
SCALE_SET_STEPS: tuple[Step, ...] = (*DIRECTORY_STEPS, ScaleSetModules(), ScaleSetVerify())
# exomi cannot run code in a Function app: its last step hands back the lines to use, not a test.
FUNCTION_APP_STEPS: tuple[Step, ...] = (*DIRECTORY_STEPS, FunctionAppSetupStep())
# Runbooks on a Hybrid Runbook Worker use the machine's modules and cannot be tested from here either.
HYBRID_WORKER_STEPS: tuple[Step, ...] = (*DIRECTORY_STEPS, HybridWorkerSetupStep())


@dataclass(frozen=True)
class Plan:
    """The steps of one request (in the order people read them) and each step's prerequisites."""

    steps: tuple[Step, ...]
    needs: dict[str, frozenset[str]]

    @classmethod
    def of(cls, steps: Iterable[Step]) -> Plan:
        steps = tuple(steps)
        names = {s.name for s in steps}
        needs = {s.name: frozenset(d for d in s.after if d in names) for s in steps}
        plan = cls(steps, needs)
        plan.sorter().prepare()  # a cycle is a programming error: graphlib raises CycleError here
        return plan

    def sorter(self) -> TopologicalSorter[str]:
        """A fresh scheduler over this plan's graph (``get_ready`` / ``done``)."""
        return TopologicalSorter({name: set(deps) for name, deps in self.needs.items()})

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)

    def index(self, name: str) -> int:
        return next(i for i, s in enumerate(self.steps) if s.name == name)

    def in_order(self) -> list[Step]:
        """Every step after its prerequisites, ties in reading order (plan and diagnose walk this)."""
        sorter = self.sorter()
        sorter.prepare()
        ordered: list[Step] = []
        while sorter.is_active():
            ready = sorted(sorter.get_ready(), key=self.index)
            ordered.extend(self.step(name) for name in ready)
            sorter.done(*ready)
        return ordered


def plan_for(operation: Operation, kind: TargetKind, *, on_hybrid_worker: bool = False) -> Plan:
    """``on_hybrid_worker``: an Automation account's runbooks run on a Hybrid Runbook Worker group."""
    if operation is Operation.REVOKE:
        return _PLANS["revoke"]
    if kind is TargetKind.AUTOMATION_ACCOUNT:
        return _PLANS["hybrid-worker" if on_hybrid_worker else "automation"]
    if kind is TargetKind.VIRTUAL_MACHINE:
        return _PLANS["vm"]
    if kind is TargetKind.FUNCTION_APP:
        return _PLANS["function-app"]
    if kind is TargetKind.SCALE_SET:
        return _PLANS["scale-set"]
    return _PLANS["identity"]


_PLANS = {
    "revoke": Plan.of(REVOKE_STEPS),
    "automation": Plan.of(AUTOMATION_STEPS),
    "vm": Plan.of(VM_STEPS),
    "identity": Plan.of(DIRECTORY_STEPS),
    "function-app": Plan.of(FUNCTION_APP_STEPS),
    "hybrid-worker": Plan.of(HYBRID_WORKER_STEPS),
    "scale-set": Plan.of(SCALE_SET_STEPS),
}
