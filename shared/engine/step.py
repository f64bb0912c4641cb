"""The shape of a step: observe (read-only), then apply (act only on a difference, and record)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from shared.engine.context import Observation, StepContext, StepResult, Verdict


class Step(ABC):
    name: ClassVar[str]  # stable: it is a Table row key
    title: ClassVar[str]  # what people see
    after: ClassVar[tuple[str, ...]] = ()  # steps whose facts this one needs

    @abstractmethod
    async def observe(self, ctx: StepContext) -> Observation:
        """Look at the tenant and compare with the desired state. Never writes."""

    async def apply(self, ctx: StepContext) -> StepResult:
        """Default for steps that only observe: done when the observation is OK."""
        observation = await self.observe(ctx)
        return StepResult(
            done=observation.verdict is Verdict.OK, message=observation.detail, facts=observation.facts
        )


def backoff(ctx: StepContext, polls: int) -> float:
    """The n-th "check again" delay: poll, doubling, capped at max_poll."""
    return min(ctx.timings.poll * (2 ** max(polls, 0)), ctx.timings.max_poll)
