"""``python -m devhost``: serve a v2-model function app like ``func start`` until SIGTERM/SIGINT.

Prints one JSON line on stdout when ready (``url``, keys, ``functions``, ``errors``); logs go to stderr.
Exits with code 1 and the worker's message when the app cannot be loaded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path

from devhost.azurite import AzuriteProcess
from devhost.host import DevHost
from devhost.loader import AppLoadError
from devhost.settings import ConfigError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devhost", description=__doc__.splitlines()[0])
    parser.add_argument("--app-dir", default=".", help="the function app folder (host.json, function_app.py)")
    parser.add_argument(
        "--module", default=None, help="module to index (default: PYTHON_SCRIPT_FILE_NAME or function_app)"
    )
    parser.add_argument("--port", type=int, default=7071, help="HTTP port; 0 picks a free one (default 7071)")
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--master-key", default=None, help="default: $DEVHOST_MASTER_KEY or a generated key")
    parser.add_argument(
        "--function-key", default=None, help="default: $DEVHOST_FUNCTION_KEY or a generated key"
    )
    parser.add_argument(
        "--eventgrid-key", default=None, help="require this system key on the Event Grid webhook"
    )
    parser.add_argument(
        "--azurite", action="store_true", help="start Azurite and point AzureWebJobsStorage at it"
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace, module: str, storage: str | None) -> None:
    host = DevHost(
        Path.cwd(),
        module,
        port=args.port,
        bind=args.bind,
        master_key=args.master_key,
        function_key=args.function_key,
        eventgrid_key=args.eventgrid_key,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        info = await host.start()
        if storage is not None:
            info = {**info, "storage": storage}  # the connection string of the Azurite started for --azurite
        print(json.dumps(info), flush=True)
        await stop.wait()
    finally:
        await host.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="[%(asctime)s] %(levelname)s %(name)s: %(message)s",
    )
    # The host's own Storage calls (the app quiets azure-core's request logs itself: shared/runtime.py).
    for noisy in ("devhost.storage.http", "azure.storage"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # The worker runs in the app folder with the app folder first on sys.path.
    os.chdir(Path(args.app_dir).resolve())
    module = args.module or Path(os.environ.get("PYTHON_SCRIPT_FILE_NAME", "function_app.py")).stem
    azurite = AzuriteProcess() if args.azurite else None
    try:
        storage = azurite.start() if azurite is not None else None
        if storage is not None:
            os.environ["AzureWebJobsStorage"] = storage  # noqa: SIM112 (the Functions setting name)
        asyncio.run(serve(args, module, storage))
    except (AppLoadError, ConfigError) as error:
        print(f"devhost: error: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        if azurite is not None:
            azurite.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
