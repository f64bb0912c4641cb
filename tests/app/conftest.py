"""Fixtures for the Function app's end-to-end tests: the real function_app.py under devhost (the
stand-in for `func start`), against the emulator and Azurite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devhost.process import DevHostProcess
from tests.engine.conftest import Targets, targets  # noqa: F401 - re-exported fixture
from tests.support.api import (
    QUIET_TIMERS,
    start_api,  # noqa: F401 - re-exported fixture (the HTTP API's hosts)
)
from tests.support.exomi import ROOT, ExomiRunner

# Faster queue retries than production's host.json, through the host's own override mechanism
# (app settings named AzureFunctionsJobHost__<path> override host.json values).
FAST_QUEUES = {
    "AzureFunctionsJobHost__extensions__queues__visibilityTimeout": "00:00:01",
    "AzureFunctionsJobHost__extensions__queues__maxPollingInterval": "00:00:00.200",
}


@pytest.fixture
def exomi(emulator, azurite) -> ExomiRunner:
    return ExomiRunner(emulator, azurite)


@pytest.fixture
def function_host(exomi, tmp_path) -> Iterator[DevHostProcess]:
    host = DevHostProcess(
        ROOT,
        env={**exomi.env(), **FAST_QUEUES, **QUIET_TIMERS, "FUNCTIONS_WORKER_RUNTIME": "python"},
        log_file=tmp_path / "host.log",
    )
    host.start()
    yield host
    host.stop()


__all__ = ["Targets", "start_api", "targets"]
