"""When to look again at something Azure is doing: an import, a job, a Run Command.

Doubling backoff suits failures of unknown length; these waits have a length that is roughly known, so
they are looked at on a schedule that fits them: before the expected end, halfway to it each time, and
once the end is near (within two ``min_poll``) exactly at it, so a wait that takes as long as expected is
seen done on that look; after it, every few percent of the time waited so far (``wait_precision``), never
more often than ``min_poll`` and never less often than ``max_poll``. A finished wait is seen late by at
most that few percent.

A wait begins when Azure accepted the work (the answer to the PUT or POST that started it), and the
elapsed time is measured when the look is scheduled, so the round trip of the start and of each look is
not counted twice.
"""

from __future__ import annotations

from datetime import datetime

from shared.engine.context import StepContext
from shared.settings import EngineTimings
from shared.state.records import utcnow


def next_look(timings: EngineTimings, elapsed: float, expected: float = 0.0) -> float:
    """Seconds until the next look, ``elapsed`` seconds into a wait expected to take ``expected``."""
    floor = min(timings.min_poll, timings.poll)
    if expected > 0 and elapsed < expected:
        remaining = expected - elapsed
        return remaining if remaining <= 2 * floor else max(floor, remaining / 2)
    return min(max(floor, timings.wait_precision * elapsed), timings.max_poll)


def look_again(ctx: StepContext, since: str, expected: float = 0.0) -> float:
    """``next_look`` for a wait that began at ``since`` (ISO time, kept in the step's memo), from now."""
    elapsed = (utcnow() - datetime.fromisoformat(since)).total_seconds()
    return next_look(ctx.timings, max(elapsed, 0.0), expected)


def started_now() -> str:
    """The ``since`` of a wait that Azure has just accepted (call it after the start's answer)."""
    return utcnow().isoformat()


def waited(since: str) -> float:
    """How long a wait took, from Azure's accepting the work to the answer that showed it done (just
    received): what the learned durations (shared/state/durations.py) keep, on the same clock as the looks."""
    return (utcnow() - datetime.fromisoformat(since)).total_seconds()
