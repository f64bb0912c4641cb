"""``python -m emulator``: start the tenant emulator and print one line of JSON when ready."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import tempfile
from pathlib import Path

from emulator import server
from emulator.ratelimits import RateLimitConfig, RateLimiter
from emulator.runtime import EmulatorRuntime, TenantOptions
from emulator.timings import Timings, fast_timings
from emulator.tls import create_tls_files


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    parser.add_argument(
        "--port",
        type=int,
        default=0,
        help="HTTPS port for ARM, Graph and the control API (default: any free port)",
    )
    parser.add_argument(
        "--identity-port",
        type=int,
        default=0,
        help="HTTP port of the managed-identity endpoint (default: any free port)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where the CA and certificates go (default: a temporary folder)",
    )
    parser.add_argument(
        "--domain", default="contoso.onmicrosoft.com", help="the tenant's initial domain (its organization)"
    )
    parser.add_argument(
        "--extra-domain", action="append", default=None, help="another verified/accepted domain (repeatable)"
    )
    parser.add_argument("--subscriptions", type=int, default=2, help="number of subscriptions (default 2)")
    parser.add_argument(
        "--without-exchange-sp",
        action="store_true",
        help="start without the 'Office 365 Exchange Online' service principal",
    )
    parser.add_argument(
        "--without-app-permissions",
        action="store_true",
        help="exomi's identity starts with no Graph permission and no ARM role (what exomi bootstrap fixes)",
    )
    parser.add_argument("--fast", action="store_true", help="short delays everywhere (for tests)")
    parser.add_argument(
        "--timings", default=None, help="JSON object overriding delays, e.g. '{\"job_run\": 0.2}'"
    )
    parser.add_argument(
        "--rate-limits",
        default=None,
        help='turn on the token buckets: "on" for the published limits, or a JSON object as PUT '
        '/_control/ratelimits takes, e.g. \'{"scale": 0.01, "clock": "manual"}\' (default: off)',
    )
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> None:
    timings = fast_timings() if args.fast else Timings()
    if args.timings:
        timings.update(json.loads(args.timings))
    options = TenantOptions(
        domain=args.domain,
        extra_domains=tuple(args.extra_domain)
        if args.extra_domain is not None
        else TenantOptions.extra_domains,
        subscription_count=args.subscriptions,
        with_exchange_sp=not args.without_exchange_sp,
        app_permissions=not args.without_app_permissions,
    )
    state_dir = args.state_dir or Path(tempfile.mkdtemp(prefix="exomi-emulator-"))
    tls = create_tls_files(state_dir)
    limits = RateLimitConfig()
    if args.rate_limits:
        limits = RateLimitConfig.from_dict({} if args.rate_limits == "on" else json.loads(args.rate_limits))
    runtime = EmulatorRuntime(timings=timings, options=options, rate_limits=RateLimiter(limits))
    runners = await server.start(runtime, tls, port=args.port, identity_port=args.identity_port)
    print(json.dumps(server.ready_line(runtime, tls)), flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for runner in runners:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
