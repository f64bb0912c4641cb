"""When to look again at something Azure is doing: an import, a job, a Run Command.

Doubling backoff suits failures of unknown length; these waits have a length that is roughly known, so
they are looked at on a schedule that fits them: before the expected end, halfway to it each time; after
it, every few percent of the time waited so far (``wait_precision``), never more often than ``min_poll``
and never less often than ``max_poll``. A finished wait is seen late by at most that few percent.
"""

from __future__ import annotations

from datetime import datetime

from shared.engine.context import StepContext
from shared.settings import EngineTimings


def next_look(timings: EngineTimings, elapsed: float, expected: float = 0.0) -> float:
    """Seconds until the next look, ``elapsed`` seconds into a wait expected to take ``expected``."""
    floor = min(timings.min_poll, timings.poll)
    if expected > 0 and elapsed < expected:
        return max(floor, (expected - elapsed) / 2)
    return min(max(floor, timings.wait_precision * elapsed), timings.max_poll)


def look_again(ctx: StepContext, since: str, expected: float = 0.0) -> float:
    """``next_look`` for a wait that began at ``since`` (ISO time, kept in the step's memo)."""
    elapsed = (ctx.now - datetime.fromisoformat(since)).total_seconds()
    return next_look(ctx.timings, max(elapsed, 0.0), expected)
