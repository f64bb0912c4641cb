"""Rate limits: token buckets for ARM, Microsoft Graph (identity and access) and Azure Automation.

Every limit is a bucket of ``size`` tokens refilled at ``refill_per_second``; a request takes its cost
from each bucket that applies and is refused (429) when any of them lacks it. A refused request takes
nothing (ARM: "your request isn't processed and a new retry value is returned"). Defaults and their
sources are in emulator/README.md ("Rate limits").

Limits are off unless turned on (``--rate-limits`` or ``PUT /_control/ratelimits``), so the rest of the
emulator behaves exactly as before. ``scale`` multiplies every bucket size (at least 1 token) and
``speed`` every refill rate, so tests exhaust a bucket in a few calls and recover within a second.

Two clocks drive the buckets:

* ``wall``: real time (``time.monotonic``), as Azure does.
* ``manual``: time stands still, so a burst never refills by accident on a slow machine. It moves only
  when a test advances it (``POST /_control/ratelimits/advance``, which also forgets the Retry-Afters
  still being waited out) or when a caller that was told
  ``Retry-After: N`` comes back after waiting at least N real seconds: then the clock moves on by the N
  seconds the emulator promised, and not a moment more. An SDK's automatic retry therefore succeeds,
  whatever the speed of the machine, and a caller that retries too early is refused again.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

# Published limits (bucket size, refill per second); README.md cites each one.
ARM_LIMITS = {
    # Per subscription and principal (the caller's object id); token bucket since 2024.
    "arm_reads": (250, 25.0),
    "arm_writes": (200, 10.0),
    "arm_deletes": (200, 10.0),
    # Per subscription across all principals: 15 times the principal limits.
    "arm_global_reads": (3750, 375.0),
    "arm_global_writes": (3000, 150.0),
    "arm_global_deletes": (3000, 150.0),
    # Requests without a subscription (tenant level), per tenant and principal.
    "arm_tenant_reads": (250, 25.0),
    "arm_tenant_writes": (200, 10.0),
    "arm_tenant_deletes": (200, 10.0),
}
GRAPH_LIMITS = {
    # Identity and access, application+tenant pair, small tenant (under 50 users): 3,500 per 10 s.
    "graph_resource_units": (3500, 350.0),
    # Identity and access writes: app+tenant 3,000 per 2 min 30 s; tenant (all apps) 18,000 per 5 min.
    "graph_writes": (3000, 20.0),
    "graph_tenant_writes": (18000, 60.0),
}
AUTOMATION_LIMITS = {
    # Per Automation account: 5 module imports and 100 new jobs every 30 seconds.
    "automation_module_imports": (5, 5 / 30),
    "automation_job_submissions": (100, 100 / 30),
}
DEFAULT_LIMITS = {**ARM_LIMITS, **GRAPH_LIMITS, **AUTOMATION_LIMITS}
# Concurrent running jobs per Automation account (pay-as-you-go tier; Enterprise/CSP 50, trials 5).
DEFAULT_CONCURRENT_JOBS = 10
CLOCKS = ("wall", "manual")


@dataclass
class LimitSpec:
    size: float
    refill_per_second: float
    enabled: bool = True


@dataclass
class RateLimitConfig:
    """What ``PUT /_control/ratelimits`` and ``--rate-limits`` accept (all fields optional)."""

    enabled: bool = False
    clock: str = "wall"
    scale: float = 1.0  # multiplies bucket sizes (never below 1 token)
    speed: float = 1.0  # multiplies refill rates
    limits: dict[str, LimitSpec] = field(
        default_factory=lambda: {name: LimitSpec(*spec) for name, spec in DEFAULT_LIMITS.items()}
    )
    # Jobs in New, Activating or Running per account; None: no limit.
    automation_concurrent_jobs: int | None = DEFAULT_CONCURRENT_JOBS

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> RateLimitConfig:
        allowed = {"enabled", "clock", "scale", "speed", "limits", "automation_concurrent_jobs"}
        unknown = set(body) - allowed
        if unknown:
            raise ValueError(f"unknown rate-limit field(s): {', '.join(sorted(unknown))}")
        config = cls(enabled=bool(body.get("enabled", True)))
        clock = body.get("clock", config.clock)
        if clock not in CLOCKS:
            raise ValueError(f"clock must be one of {', '.join(CLOCKS)}")
        config.clock = clock
        for name in ("scale", "speed"):
            value = body.get(name, 1.0)
            if not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"{name} must be a number > 0")
            setattr(config, name, float(value))
        overrides = body.get("limits") or {}
        if not isinstance(overrides, dict):
            raise ValueError("limits must map limit names to {size, refill_per_second, enabled}")
        for name, spec in overrides.items():
            if name not in config.limits:
                raise ValueError(f"unknown limit {name!r}; known: {', '.join(sorted(config.limits))}")
            if not isinstance(spec, dict) or set(spec) - {"size", "refill_per_second", "enabled"}:
                raise ValueError(f"limit {name!r} takes size, refill_per_second and enabled")
            current = config.limits[name]
            size = spec.get("size", current.size)
            refill = spec.get("refill_per_second", current.refill_per_second)
            if not isinstance(size, int | float) or size < 1:
                raise ValueError(f"limit {name!r}: size must be a number >= 1")
            if not isinstance(refill, int | float) or refill <= 0:
                raise ValueError(f"limit {name!r}: refill_per_second must be a number > 0")
            config.limits[name] = LimitSpec(float(size), float(refill), bool(spec.get("enabled", True)))
        jobs = body.get("automation_concurrent_jobs", config.automation_concurrent_jobs)
        if jobs is not None and (not isinstance(jobs, int) or jobs < 1):
            raise ValueError("automation_concurrent_jobs must be an integer >= 1 or null")
        config.automation_concurrent_jobs = jobs
        return config

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def effective(self, name: str) -> LimitSpec | None:
        """The limit as applied (scale and speed included), or None when it is off."""
        spec = self.limits[name]
        if not self.enabled or not spec.enabled:
            return None
        size = max(1.0, math.floor(spec.size * self.scale + 1e-9))  # 0.29 * 100 is 28.999...
        return LimitSpec(size, spec.refill_per_second * self.speed)


@dataclass
class Bucket:
    size: float
    refill: float
    tokens: float
    updated: float
    # Manual clock: a caller told to wait is owed ``owed`` seconds once real time passes ``due``.
    due: float | None = None
    owed: float = 0.0

    def level(self, now: float) -> float:
        return min(self.size, self.tokens + max(0.0, now - self.updated) * self.refill)

    def seconds_until(self, cost: float, now: float) -> float:
        return max(0.0, (cost - self.level(now)) / self.refill)


@dataclass
class Charge:
    """One bucket a request draws from: the limit's name, whose bucket, and how many tokens."""

    limit: str
    key: str
    cost: float = 1.0


@dataclass
class Verdict:
    allowed: bool
    # Tokens left (whole numbers) in each bucket charged, by limit name, after this request.
    remaining: dict[str, int]
    # Used fraction of each bucket charged (0 = full, 1 = empty), by limit name.
    used: dict[str, float]
    retry_after: int = 0
    exhausted: list[str] = field(default_factory=list)


class RateLimiter:
    def __init__(self, config: RateLimitConfig | None = None) -> None:
        self.startup = config or RateLimitConfig()
        self.config = replace(self.startup)
        self.buckets: dict[tuple[str, str], Bucket] = {}
        self.manual_now = 0.0
        # 429s answered since the limits were configured, by the limit that refused (tests compare them
        # with what the limits allow).
        self.throttled: dict[str, int] = {}

    # ------------------------------------------------------------------ configuration

    def configure(self, config: RateLimitConfig) -> None:
        self.config = config
        self.buckets.clear()
        self.manual_now = 0.0
        self.throttled = {}

    def count_refusal(self, limit: str) -> None:
        self.throttled[limit] = self.throttled.get(limit, 0) + 1

    def reset(self) -> None:
        """Back to the start-up configuration (a tenant reset), every bucket full."""
        self.configure(replace(self.startup, limits=dict(self.startup.limits)))

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    def now(self) -> float:
        return self.manual_now if self.config.clock == "manual" else time.monotonic()

    def advance(self, seconds: float) -> None:
        """Moves the manual clock on. The test has taken charge of time: Retry-Afters still being
        waited out are forgotten, so a slow machine cannot add the seconds they promised."""
        if self.config.clock != "manual":
            raise ValueError("only the manual clock can be advanced")
        self.manual_now += seconds
        for bucket in self.buckets.values():
            bucket.due = None

    def refill(self) -> None:
        self.buckets.clear()

    def state(self) -> dict[str, Any]:
        now = self.now()
        return {
            "config": self.config.as_dict(),
            "clock_now": now if self.config.clock == "manual" else None,
            "throttled": {**self.throttled, "total": sum(self.throttled.values())},
            "buckets": [
                {
                    "limit": limit,
                    "key": key,
                    "size": b.size,
                    "refill_per_second": b.refill,
                    "tokens": b.level(now),
                }
                for (limit, key), b in sorted(self.buckets.items())
            ],
        }

    # ------------------------------------------------------------------ taking tokens

    def _bucket(self, limit: str, key: str, spec: LimitSpec, now: float) -> Bucket:
        bucket = self.buckets.get((limit, key))
        if bucket is None:
            bucket = Bucket(spec.size, spec.refill_per_second, spec.size, now)
            self.buckets[(limit, key)] = bucket
        return bucket

    def _keep_promises(self, buckets: list[Bucket]) -> None:
        """Manual clock: time moves on for a caller that waited out its Retry-After."""
        wall = time.monotonic()
        for bucket in buckets:
            if bucket.due is not None and wall >= bucket.due:
                self.manual_now = max(self.manual_now, bucket.owed)
                bucket.due = None

    def take(self, charges: list[Charge]) -> Verdict:
        """Charges every applicable bucket, or none of them when one lacks the tokens."""
        active = [(c, spec) for c in charges if (spec := self.config.effective(c.limit)) is not None]
        if not active:
            return Verdict(True, {}, {})
        now = self.now()
        buckets = [self._bucket(c.limit, c.key, spec, now) for c, spec in active]
        if self.config.clock == "manual":
            self._keep_promises(buckets)
            now = self.now()
        short = [(c, b) for (c, _), b in zip(active, buckets, strict=True) if b.level(now) < c.cost]
        if short:
            wait = max(b.seconds_until(c.cost, now) for c, b in short)
            # Whole seconds, at least 1: SDKs read Retry-After as integer seconds and treat 0 as absent.
            retry_after = max(1, math.ceil(wait - 1e-9))
            if self.config.clock == "manual":
                due = time.monotonic() + retry_after
                for _, bucket in short:
                    bucket.due, bucket.owed = due, now + retry_after
            left = {c.limit: math.floor(b.level(now)) for (c, _), b in zip(active, buckets, strict=True)}
            for c, _ in short:
                left[c.limit] = 0
            # One 429, counted once, under the first limit that refused it.
            self.count_refusal(short[0][0].limit)
            return Verdict(
                False, left, {c.limit: 1.0 for c, _ in short}, retry_after, [c.limit for c, _ in short]
            )
        remaining: dict[str, int] = {}
        used: dict[str, float] = {}
        for (charge, _), bucket in zip(active, buckets, strict=True):
            bucket.tokens = bucket.level(now) - charge.cost
            bucket.updated = now
            remaining[charge.limit] = math.floor(bucket.tokens + 1e-9)
            used[charge.limit] = 1.0 - bucket.tokens / bucket.size
        return Verdict(True, remaining, used)
