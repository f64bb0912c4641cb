"""Shared fixtures: one emulator process and one Azurite per test session, a fresh tenant per test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from devhost.azurite import AzuriteProcess
from emulator.process import EmulatorProcess
from emulator.timings import fast_timings
from tests.support.emulator import Emulator


@pytest.fixture(scope="session")
def emulator_process(tmp_path_factory) -> Iterator[dict]:
    process = EmulatorProcess("--fast", state_dir=tmp_path_factory.mktemp("emulator"))
    info = process.start()
    # azure-identity reads these when a ManagedIdentityCredential is built: tokens come from the emulator.
    saved = {k: os.environ.get(k) for k in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER")}
    os.environ.update(info.identity_env())
    yield info.raw
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    process.stop()


@pytest.fixture
def emulator(emulator_process) -> Iterator[Emulator]:
    """A freshly reset tenant with the short test timings and no faults."""
    control = httpx.Client(verify=emulator_process["ca_bundle"], timeout=30)
    base = emulator_process["control_endpoint"]
    control.patch(f"{base}/timings", json=fast_timings().as_dict()).raise_for_status()
    response = control.post(f"{base}/reset", json={})
    response.raise_for_status()
    info = {**emulator_process, **response.json()}
    yield Emulator(info, control)
    control.close()


@pytest.fixture(scope="session")
def azurite() -> Iterator[str]:
    """Connection string of a session-wide Azurite (Table, Queue, Blob)."""
    process = AzuriteProcess()
    connection_string = process.start()
    yield connection_string
    process.stop()
