"""What one engine pass knows of its request's steps and audit, and what it has not written yet.

A pass reads the request's steps and audit records once. The intent of a change is written before the
call that makes it (the crash-safety of the audit trail rests on it); the results of changes and the
steps' outcomes are kept here and written at the pass's next checkpoint (before it holds a wait, at its
heartbeat, before it ends), each table's share in one transaction: all of them are rows of the
request's own partition. A crash before a checkpoint loses only what the next pass finds out again:
its steps observe the tenant before they act, and a change whose intent is recorded but whose result is
not is recorded then (``AuditTrail.settle``).
"""

from __future__ import annotations

from shared.state.records import AuditRecord, StepRecord
from shared.state.store import StateStore


class Journal:
    def __init__(self, state: StateStore, steps: dict[str, StepRecord], audit: list[AuditRecord]) -> None:
        self.state = state
        self.steps = steps  # every step as this pass knows it (written or not), by name
        self.audit = {(r.step, r.sequence): r for r in audit}  # every record of the request this pass knows
        self._steps: dict[str, StepRecord] = {}  # not written yet
        self._results: dict[tuple[str, int], AuditRecord] = {}  # not written yet

    def of_step(self, step: str) -> list[AuditRecord]:
        return [record for (name, _), record in self.audit.items() if name == step]

    async def intend(self, record: AuditRecord) -> None:
        """The intent of a change: written now, before the call that makes it."""
        await self.state.audit.append(record)
        self.audit[(record.step, record.sequence)] = record

    def result(self, record: AuditRecord) -> None:
        """The result of a change: written at the next checkpoint."""
        self.audit[(record.step, record.sequence)] = record
        self._results[(record.step, record.sequence)] = record

    def step(self, record: StepRecord) -> StepRecord:
        """A step's outcome: written at the next checkpoint (the latest outcome of each step). It is
        written over the step as this pass last read or wrote it (the pass holds the request: nobody
        else writes its steps), whichever ETag the run started from."""
        known = self.steps.get(record.name)
        record = record.model_copy(update={"etag": known.etag if known is not None else None})
        self.steps[record.name] = record
        self._steps[record.name] = record
        return record

    async def flush(self) -> None:
        """Write what is pending: the audit results first, then the steps. A step recorded done whose
        result records were lost would never be looked at again; the other way round, the step runs
        again and finds its results recorded. Steps still running may add to the journal meanwhile
        (a heartbeat's checkpoint): that waits for the next checkpoint."""
        results, self._results = self._results, {}
        try:
            if results:
                await self.state.audit.append_all(list(results.values()))
        except BaseException:
            self._results = {**results, **self._results}
            raise
        steps, self._steps = self._steps, {}
        try:
            saved = await self.state.steps.save_all(list(steps.values())) if steps else []
        except BaseException:
            self._steps = {**steps, **self._steps}
            raise
        for record in saved:
            newer = self._steps.get(record.name)  # a later outcome of the step, kept meanwhile
            if newer is not None:
                newer = newer.model_copy(update={"etag": record.etag})
                self._steps[record.name] = newer
            self.steps[record.name] = newer or record
