"""State in Azure Table Storage: requests, steps, audit, targets and idempotency keys (docs/STATE.md)."""

from shared.state.records import (
    AuditRecord,
    Grants,
    ModuleGrant,
    Page,
    RequestRecord,
    StepRecord,
    Submission,
    TargetLock,
    TargetRecord,
)
from shared.state.store import StateStore
from shared.state.tables import Tables, open_table_service

__all__ = [
    "AuditRecord",
    "Grants",
    "ModuleGrant",
    "Page",
    "RequestRecord",
    "StateStore",
    "StepRecord",
    "Submission",
    "Tables",
    "TargetLock",
    "TargetRecord",
    "open_table_service",
]
