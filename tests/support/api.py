"""Test-side access to exomi's HTTP API under the local Functions host (devhost): a factory fixture
that starts function_app.py with a given policy and settings, a client that follows the asynchronous
request-reply pattern the way Logic Apps does, and a look into the state tables."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableServiceClient

from devhost.process import DevHostProcess
from shared.state.tables import TABLE_NAMES
from tests.support.exomi import ROOT, ExomiRunner, policy_for

# Faster queue retries than production's host.json (AzureFunctionsJobHost__* overrides host.json).
# The resume pass's own timer (every 30 s) is off in tests, so that a test decides when it runs (through
# the admin API, with "AzureWebJobs.resume_requests.Disabled": "false" in its settings).
QUIET_TIMERS = {"AzureWebJobs.resume_requests.Disabled": "true"}
FAST_QUEUES = {
    "AzureFunctionsJobHost__extensions__queues__visibilityTimeout": "00:00:01",
    "AzureFunctionsJobHost__extensions__queues__maxPollingInterval": "00:00:00.200",
}


@dataclass
class Api:
    """One running host: ``http`` sends the function key as the x-functions-key header."""

    host: DevHostProcess
    exomi: ExomiRunner
    storage: str
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.host.url, timeout=60, headers={"x-functions-key": self.key})

    @property
    def key(self) -> str:
        return self.host.info["function_key"]

    @property
    def url(self) -> str:
        return self.host.url

    def client(self, headers: dict[str, str]) -> httpx.Client:
        """A client that sends the function key and ``headers`` (e.g. a caller's App Service
        Authentication headers) with every call, as a Logic App's HTTP action would."""
        return httpx.Client(
            base_url=self.host.url, timeout=60, headers={"x-functions-key": self.key, **headers}
        )

    def post(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        return self.http.post(f"/api/{path}", json=body, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(f"/api/{path}", **kwargs)

    def follow(
        self, accepted: httpx.Response, client: httpx.Client | None = None, deadline_seconds: float = 90
    ) -> tuple[httpx.Response, list[httpx.Response]]:
        """Poll Location as Logic Apps does: only while the answer is 202, waiting Retry-After
        seconds each time. Returns the terminal answer and every 202 seen on the way."""
        client = client or self.http
        seen = [accepted]
        response = accepted
        deadline = time.monotonic() + deadline_seconds
        while response.status_code == 202:
            assert time.monotonic() < deadline, f"still 202 after {deadline_seconds}s: {response.json()}"
            location = response.headers["Location"]
            time.sleep(int(response.headers.get("Retry-After", "1")))
            response = client.get(location)
            if response.status_code == 202:
                seen.append(response)
        return response, seen

    def follow_id(
        self, request_id: str, deadline_seconds: float = 90
    ) -> tuple[httpx.Response, list[httpx.Response]]:
        """Follow a request by its id until it ends (as a client that knows its status URL)."""
        return self.follow(self.get(f"requests/{request_id}"), deadline_seconds=deadline_seconds)

    def rows(self) -> dict[str, int]:
        """How many entities each of exomi's state tables holds."""
        service = TableServiceClient.from_connection_string(self.storage)
        counts = {}
        for name in TABLE_NAMES:
            table = service.get_table_client(f"{self.exomi.table_prefix}{name}")
            try:
                counts[name] = sum(1 for _ in table.list_entities())
            except ResourceNotFoundError:
                counts[name] = 0
        return counts

    def no_state(self) -> None:
        """Nothing in state but the refusal log: `exomi list` shows no request and every other table is
        empty."""
        code, requests, _ = self.exomi.run("list")
        assert code == 0 and requests == []
        rows = {name: count for name, count in self.rows().items() if name != "refusals"}
        assert set(rows.values()) == {0}, rows

    def refusals(self) -> list[dict[str, Any]]:
        """The refusal log, as `exomi refusals --json` shows it."""
        code, refusals, stderr = self.exomi.run("refusals")
        assert code == 0, stderr
        return refusals


class StartApi(Protocol):
    def __call__(
        self,
        *,
        policy: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        worker: bool = True,
        instance_of: Api | None = None,
    ) -> Api: ...


@pytest.fixture
def start_api(emulator, azurite, tmp_path) -> Iterator[StartApi]:
    """Start function_app.py under devhost: ``policy`` overrides fields of the test policy, ``env`` adds
    app settings, ``worker=False`` disables the queue worker (requests then stay queued), ``instance_of``
    starts another instance of that app (the same state and settings, as Azure scales out)."""
    hosts: list[DevHostProcess] = []

    def start(
        *,
        policy: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        worker: bool = True,
        instance_of: Api | None = None,
    ) -> Api:
        runner = (
            instance_of.exomi
            if instance_of is not None
            else ExomiRunner(emulator, azurite, policy=policy_for(emulator, **(policy or {})))
        )
        settings = {
            **runner.env(),
            **FAST_QUEUES,
            **QUIET_TIMERS,
            "FUNCTIONS_WORKER_RUNTIME": "python",
            **(env or {}),
        }
        if not worker:
            settings["AzureWebJobs.advance_request.Disabled"] = "true"
        host = DevHostProcess(ROOT, env=settings, log_file=tmp_path / f"host{len(hosts)}.log")
        hosts.append(host)
        host.start()
        return Api(host, runner, azurite)

    yield start
    for host in hosts:
        host.stop()
