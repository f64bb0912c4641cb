"""App settings named ``AzureFunctionsJobHost__<path>`` override host.json values, as on the real host
(the .NET configuration maps ``__`` to a section separator and ignores the case of keys)."""

from __future__ import annotations

import json

import httpx
import pytest

from devhost.process import DevHostError, DevHostProcess
from devhost.settings import load_host_config
from tests.devhost.test_loading import HOST_JSON, HTTP_FUNCTION, write_app

QUEUES_HOST_JSON = {
    **HOST_JSON,
    "extensions": {"queues": {"visibilityTimeout": "00:00:10", "maxDequeueCount": 5}},
}


def test_settings_override_host_json_values_case_insensitively_and_add_missing_ones(tmp_path):
    app = write_app(tmp_path / "app", "app = func.FunctionApp()\n", host_json=QUEUES_HOST_JSON)
    environ = {
        "AzureFunctionsJobHost__extensions__queues__visibilityTimeout": "00:00:01",
        "azurefunctionsjobhost__Extensions__QUEUES__maxDequeueCount": "2",  # any casing addresses the key
        "AzureFunctionsJobHost__extensions__queues__maxPollingInterval": "00:00:00.200",  # not in the file
        "AzureFunctionsJobHost__functionTimeout": "00:00:30",
        "UNRELATED__extensions__queues__batchSize": "1",  # only the AzureFunctionsJobHost__ prefix counts
    }
    config = load_host_config(app, environ)
    assert config.queues.visibility_timeout == 1.0
    assert config.queues.max_dequeue_count == 2
    assert config.queues.max_polling_interval == 0.2
    assert config.queues.batch_size == 16
    assert config.function_timeout == 30.0
    # host.json itself is left as it was, and without the settings its values apply.
    assert json.loads((app / "host.json").read_text()) == QUEUES_HOST_JSON
    assert load_host_config(app, {}).queues.visibility_timeout == 10.0


def test_an_invalid_override_is_refused_like_an_invalid_host_json(tmp_path):
    app = write_app(tmp_path / "app", "app = func.FunctionApp()\n" + HTTP_FUNCTION.format(app="app"))
    log = tmp_path / "devhost.log"
    host = DevHostProcess(
        app, env={"AzureFunctionsJobHost__extensions__queues__batchSize": "64"}, log_file=log
    )
    with pytest.raises(DevHostError, match="exited with code 1"):
        host.start()
    assert "extensions.queues.batchSize must be between 1 and 32, not 64" in log.read_text()


def test_a_running_host_serves_http_functions_under_an_overridden_route_prefix(tmp_path):
    app = write_app(tmp_path / "app", "app = func.FunctionApp()\n" + HTTP_FUNCTION.format(app="app"))
    env = {"AzureFunctionsJobHost__extensions__http__routePrefix": "custom"}
    with DevHostProcess(app, env=env, log_file=tmp_path / "devhost.log") as host:
        assert httpx.get(f"{host.url}/custom/ping").text == "pong"
        assert httpx.get(f"{host.url}/api/ping").status_code == 404
