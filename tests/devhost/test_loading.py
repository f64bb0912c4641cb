"""Indexing an app as the worker does: load errors, per-function errors, the contract with
``get_raw_bindings()``, settings files, and the in-process ``DevHost`` API."""

from __future__ import annotations

import importlib.util
import json
import os
import textwrap
from pathlib import Path

import httpx
import pytest

from devhost.host import DevHost
from devhost.process import DevHostError, DevHostProcess
from tests.devhost.support import MASTER_KEY, SAMPLE_APP

HOST_JSON = {
    "version": "2.0",
    "extensionBundle": {"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": "[4.*, 5.0.0)"},
}
HTTP_FUNCTION = """
@{app}.route(route="ping", auth_level=func.AuthLevel.ANONYMOUS)
def ping(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("pong")
"""


def write_app(
    folder: Path, source: str, host_json: dict | None = HOST_JSON, module: str = "function_app"
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text("import azure.functions as func\n" + textwrap.dedent(source))
    if host_json is not None:
        (folder / "host.json").write_text(json.dumps(host_json))
    return folder


def start_fails(app_dir: Path, tmp_path: Path) -> str:
    log = tmp_path / "devhost.log"
    with pytest.raises(DevHostError, match="exited with code 1"):
        DevHostProcess(app_dir, log_file=log).start()
    return log.read_text()


def test_two_function_apps_are_refused_with_the_workers_message(tmp_path):
    app = write_app(
        tmp_path / "app",
        "app = func.FunctionApp()\nother = func.FunctionApp()\n" + HTTP_FUNCTION.format(app="app"),
    )
    assert "More than one FunctionApp or other top level function app instances are defined." in start_fails(
        app, tmp_path
    )


def test_a_module_without_a_function_app_is_refused_with_the_workers_message(tmp_path):
    app = write_app(tmp_path / "app", "bp = func.Blueprint()\n" + HTTP_FUNCTION.format(app="bp"))
    assert "Could not find top level function app instances in function_app.py." in start_fails(app, tmp_path)


def test_parameters_that_do_not_match_the_bindings_are_refused(tmp_path):
    source = """
    app = func.FunctionApp()

    @app.route(route="x")
    def x(req: func.HttpRequest, extra: str) -> func.HttpResponse:
        return func.HttpResponse("")
    """
    log = start_fails(write_app(tmp_path / "app", source), tmp_path)
    assert (
        "cannot load the x function: the following parameters are declared in Python but not in the function definition"
        in log
    )


def test_a_missing_or_versionless_host_json_is_refused(tmp_path):
    app = write_app(
        tmp_path / "app", "app = func.FunctionApp()\n" + HTTP_FUNCTION.format(app="app"), host_json=None
    )
    assert "host.json" in start_fails(app, tmp_path)
    (app / "host.json").write_text("{}")
    assert "The host.json file is missing the required 'version' property." in start_fails(app, tmp_path)


def test_without_an_extension_bundle_only_http_functions_load(tmp_path, azurite):
    source = (
        "app = func.FunctionApp()\n"
        + HTTP_FUNCTION.format(app="app")
        + textwrap.dedent(
            """
        @app.queue_trigger(arg_name="msg", queue_name="jobs", connection="AzureWebJobsStorage")
        def job(msg: func.QueueMessage) -> None:
            pass
        """
        )
    )
    app = write_app(tmp_path / "app", source, host_json={"version": "2.0"})
    env = {"AzureWebJobsStorage": azurite}
    with DevHostProcess(app, env=env, log_file=tmp_path / "devhost.log") as host:
        assert [f["name"] for f in host.info["functions"]] == ["ping"]
        assert "The binding type(s) 'queueTrigger' are not registered" in host.info["errors"]["job"]
        assert httpx.get(host.url + "/api/ping").text == "pong"


def test_the_host_serves_exactly_the_bindings_get_raw_bindings_reports(sample_host):
    # A fresh import of the sample under another name: get_functions() may be called once per app instance.
    spec = importlib.util.spec_from_file_location("sample_app_contract", SAMPLE_APP / "function_app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = {
        f.get_function_name(): [json.loads(b) for b in f.get_raw_bindings()]
        for f in module.app.get_functions()
    }
    listing = httpx.get(sample_host.url + "/admin/functions", headers={"x-functions-key": MASTER_KEY}).json()
    assert {f["name"]: f["config"]["bindings"] for f in listing} == expected
    one = httpx.get(
        sample_host.url + "/admin/functions/get_item", headers={"x-functions-key": MASTER_KEY}
    ).json()
    assert one["invoke_url_template"] == f"{sample_host.url}/api/items/{{item_id:int}}/{{tag?}}"


async def test_in_process_devhost_applies_local_settings_and_generates_keys(tmp_path, monkeypatch):
    source = """
    import os
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

    @app.route(route="settings")
    def settings(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(os.environ["DEVHOST_T_FROM_FILE"] + "," + os.environ["DEVHOST_T_OVERRIDDEN"])
    """
    app = write_app(tmp_path / "app", source, module="inprocess_app")
    values = {"DEVHOST_T_FROM_FILE": "file", "DEVHOST_T_OVERRIDDEN": "file"}
    (app / "local.settings.json").write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    monkeypatch.setenv("DEVHOST_T_OVERRIDDEN", "environment")  # the environment wins over the file
    for name in ("DEVHOST_MASTER_KEY", "DEVHOST_FUNCTION_KEY"):
        monkeypatch.delenv(name, raising=False)
    try:
        async with DevHost(app, "inprocess_app", port=0) as info:
            assert info["master_key"] and info["function_key"] and info["master_key"] != info["function_key"]
            async with httpx.AsyncClient(base_url=info["url"]) as http:
                assert (await http.get("/api/settings")).status_code == 401
                response = await http.get("/api/settings", params={"code": info["function_key"]})
        assert response.text == "file,environment"
    finally:
        os.environ.pop("DEVHOST_T_FROM_FILE", None)


ASGI_APP = """
async def asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    text = f"{scope['method']} {scope['path']} {scope['query_string'].decode()}"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": text.encode()})

app = func.AsgiFunctionApp(app=asgi, http_auth_level=func.AuthLevel.ANONYMOUS)
"""


def test_an_asgi_function_app_is_served_through_its_catch_all_route(tmp_path):
    # AsgiFunctionApp registers one function taking (req, context): the context parameter must be passed.
    app = write_app(tmp_path / "app", ASGI_APP)
    with DevHostProcess(app, log_file=tmp_path / "devhost.log") as host:
        assert host.info["functions"][0]["url"] == f"{host.url}/api/{{*route}}"
        assert httpx.get(host.url + "/api/users/7", params={"x": "1"}).text == "GET /api/users/7 x=1"
        assert httpx.delete(host.url + "/api").text == "DELETE /api "


def test_unemulated_output_bindings_are_dropped_with_a_warning(tmp_path, azurite):
    source = """
    app = func.FunctionApp()

    @app.route(route="save", auth_level=func.AuthLevel.ANONYMOUS)
    @app.table_output(arg_name="row", table_name="rows", connection="AzureWebJobsStorage")
    def save(req: func.HttpRequest, row: func.Out[str]) -> func.HttpResponse:
        row.set('{"PartitionKey": "p", "RowKey": "r"}')
        return func.HttpResponse("saved")
    """
    log = tmp_path / "devhost.log"
    with DevHostProcess(
        write_app(tmp_path / "app", source), env={"AzureWebJobsStorage": azurite}, log_file=log
    ) as host:
        assert httpx.get(host.url + "/api/save").text == "saved"
    assert (
        "devhost does not emulate 'table' output bindings: values set on 'row' of 'save' are dropped"
        in log.read_text()
    )
