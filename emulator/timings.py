"""Every emulated delay in one place, so tests can make them short and demos realistic.

All values are seconds. They can be set on the command line (``--timings '{"job_run": 0.2}'``) and
changed at run time through the control API (``PATCH /_control/timings``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass
class Timings:
    # A new managed identity's service principal is invisible to Graph (404) for this long.
    replication_delay: float = 3.0
    # An app-role or Entra-role grant reaches the identity's Exchange token only after this long.
    propagation_delay: float = 5.0
    # Module / runtime-environment package import (Creating -> ... -> Succeeded|Failed).
    module_import: float = 3.0
    # Runbook draft/content and publish long-running operations.
    lro: float = 0.5
    # Job: New -> Running after job_start, Running -> Completed|Failed after job_run more.
    job_start: float = 0.5
    job_run: float = 1.0
    # VM Run Command.
    run_command: float = 1.0
    # Event Grid: delay before the first delivery attempt, and between retries.
    event_delivery: float = 0.1
    event_retry: float = 0.5
    # A managed identity's Exchange Online token is cached this long by its host and cannot be refreshed
    # early: a token taken before a grant propagated keeps the identity unauthorized until it expires.
    token_cache: float = 86400.0
    # Value of Retry-After (seconds, integer >= 1) sent on 202 poll responses and injected 429s.
    retry_after: int = 1

    def update(self, values: dict[str, float]) -> None:
        known = {f.name for f in fields(self)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(
                f"unknown timing(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}"
            )
        for name, value in values.items():
            if not isinstance(value, int | float) or value < 0:
                raise ValueError(f"timing {name!r} must be a number >= 0")
            setattr(self, name, int(value) if name == "retry_after" else float(value))

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def fast_timings() -> Timings:
    """Short delays that still exercise every waiting path."""
    return Timings(
        replication_delay=0.3,
        propagation_delay=0.5,
        module_import=0.3,
        lro=0.1,
        job_start=0.1,
        job_run=0.2,
        run_command=0.2,
        event_delivery=0.0,
        event_retry=0.1,
        token_cache=1.0,
        retry_after=1,
    )
