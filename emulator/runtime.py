"""The running emulator: the tenant plus everything the HTTP handlers share."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from emulator.clouds import cloud_named
from emulator.http import FaultInjector, RequestLog
from emulator.ratelimits import RateLimiter
from emulator.tenant import Tenant
from emulator.timings import Timings
from emulator.tokens import TokenIssuer


@dataclass
class TenantOptions:
    """How a fresh tenant starts (also what ``POST /_control/reset`` accepts)."""

    domain: str = "contoso.onmicrosoft.com"
    extra_domains: tuple[str, ...] = ("contoso.com",)
    subscription_count: int = 2
    with_exchange_sp: bool = True
    cloud: str = "O365Default"  # the Microsoft 365 environment, which names the Azure cloud too (clouds.py)
    # False: exomi's own identity starts with no Graph permission and no ARM role (what `exomi bootstrap`
    # starts from in a new tenant).
    app_permissions: bool = True

    def build(self, timings: Timings) -> Tenant:
        return Tenant(
            timings,
            domain=self.domain,
            extra_domains=self.extra_domains,
            subscription_count=self.subscription_count,
            with_exchange_sp=self.with_exchange_sp,
            cloud=cloud_named(self.cloud),
            app_permissions=self.app_permissions,
        )


@dataclass
class EmulatorRuntime:
    timings: Timings
    options: TenantOptions
    tenant: Tenant = field(init=False)
    issuer: TokenIssuer = field(default_factory=TokenIssuer)
    faults: FaultInjector = field(default_factory=FaultInjector)
    log: RequestLog = field(default_factory=RequestLog)
    rate_limits: RateLimiter = field(default_factory=RateLimiter)
    identity_header: str = field(default_factory=lambda: secrets.token_hex(16))
    base_url: str = ""  # https://127.0.0.1:PORT, set once the listener is bound
    identity_url: str = ""  # http://127.0.0.1:PORT/msi/token

    def __post_init__(self) -> None:
        self.tenant = self.options.build(self.timings)
        self._reset_hooks: list = []

    def on_reset(self, hook) -> None:
        """Lets components (Event Grid, ...) re-attach to the new tenant after a reset."""
        self._reset_hooks.append(hook)
        hook(self.tenant)

    def reset(self, options: TenantOptions | None = None) -> None:
        if options is not None:
            self.options = options
        self.tenant = self.options.build(self.timings)
        self.faults.rules.clear()
        self.rate_limits.reset()  # back to the command line's limits, every bucket full
        self.log.clear()
        for hook in self._reset_hooks:
            hook(self.tenant)
