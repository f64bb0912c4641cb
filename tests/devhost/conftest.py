"""One devhost child process serving tests/devhost/sample_app for the whole session, on Azurite."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.queue import QueueClient

from devhost.process import DevHostProcess
from tests.devhost.support import FUNCTION_KEY, MASTER_KEY, SAMPLE_APP, Records


@pytest.fixture(scope="session")
def sample_host(azurite, tmp_path_factory) -> Iterator[DevHostProcess]:
    work = tmp_path_factory.mktemp("devhost-sample")
    env = {
        "AzureWebJobsStorage": azurite,
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "SAMPLE_RECORD_DIR": str(work / "records"),
        "WORK_QUEUE": f"work-{uuid.uuid4().hex[:8]}",
        "OUTBOX_QUEUE": f"outbox-{uuid.uuid4().hex[:8]}",
        "TICK_SCHEDULE": "*/1 * * * * *",
        "DEVHOST_MASTER_KEY": MASTER_KEY,
        "DEVHOST_FUNCTION_KEY": FUNCTION_KEY,
    }
    # Like the real listener, devhost does not create a trigger's queue: the infrastructure does.
    QueueClient.from_connection_string(azurite, env["WORK_QUEUE"]).create_queue()
    process = DevHostProcess(SAMPLE_APP, env=env, log_file=work / "devhost.log")
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def records(sample_host) -> Records:
    return Records(Path(sample_host.env["SAMPLE_RECORD_DIR"]))
