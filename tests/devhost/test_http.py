"""HTTP triggers through devhost: routes, keys and auth levels, and the request/response the app sees."""

from __future__ import annotations

import uuid

import httpx

from tests.devhost.support import FUNCTION_KEY, MASTER_KEY


def test_ready_line_lists_functions_with_their_urls_and_the_configured_keys(sample_host):
    info = sample_host.info
    assert info["master_key"] == MASTER_KEY and info["function_key"] == FUNCTION_KEY
    functions = {f["name"]: f for f in info["functions"]}
    assert set(functions) == {
        "echo", "get_item", "delete_order", "greeting", "boom", "enqueue", "submit", "work", "on_event", "tick", "nightly"
    }  # fmt: skip
    assert functions["echo"]["url"] == f"{sample_host.url}/api/echo/{{name}}"
    assert functions["echo"]["methods"] == ["GET", "POST"]
    assert functions["get_item"]["authLevel"] == "function"
    assert functions["work"]["queueName"] == sample_host.env["WORK_QUEUE"]  # %WORK_QUEUE% resolved
    assert (
        functions["on_event"]["url"] == f"{sample_host.url}/runtime/webhooks/eventgrid?functionName=on_event"
    )
    assert functions["tick"]["schedule"] == "*/1 * * * * *"
    assert info["errors"] == {}


def test_the_function_gets_the_request_the_worker_builds_and_its_response_is_sent_back(sample_host):
    with sample_host.client() as http:
        response = http.post(
            "/api/echo/ann?a=1&a=2&empty=",
            content=b'{"x": 1}',
            headers={"Content-Type": "application/json", "X-Custom": "v"},
        )
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-echo"] == "yes"
    assert response.cookies["session"] == "abc"
    seen = response.json()
    assert seen["type"] == "azure.functions.http.HttpRequest"
    assert seen["method"] == "POST"
    assert seen["url"] == f"{sample_host.url}/api/echo/ann?a=1&a=2&empty="
    assert seen["params"] == {"a": "1,2"}  # repeated values joined, empty ones dropped (as the host does)
    assert seen["route_params"] == {"name": "ann"}
    assert seen["headers"]["x-custom"] == "v" and seen["headers"]["content-type"] == "application/json"
    assert seen["body"] == '{"x": 1}'


def test_function_level_routes_need_a_function_or_master_key(sample_host):
    with sample_host.client() as http:
        assert http.get("/api/items/42").status_code == 401
        assert http.get("/api/items/42", params={"code": "wrong"}).status_code == 401
        assert http.get("/api/items/42", params={"code": FUNCTION_KEY}).json() == {"item_id": "42"}
        with_header = http.get("/api/items/42/red", headers={"x-functions-key": MASTER_KEY})
        assert with_header.json() == {"item_id": "42", "tag": "red"}


def test_unknown_routes_failed_constraints_and_wrong_methods_are_404(sample_host):
    key = {"code": FUNCTION_KEY}
    with sample_host.client() as http:
        assert http.get("/api/items/abc", params=key).status_code == 404  # {item_id:int}
        assert http.get("/api/items/99999999999", params=key).status_code == 404  # beyond int32
        assert http.get("/api/nothing-here", params=key).status_code == 404
        assert http.get("/items/42", params=key).status_code == 404  # outside the route prefix
        # The Functions host has no 405: a method the function does not accept does not match the route.
        wrong_method = http.post("/api/items/42", params=key)
        assert wrong_method.status_code == 404 and wrong_method.content == b""
        assert http.head("/api/echo/ann").status_code == 404
        assert http.get("/API/Items/7", params=key).json() == {"item_id": "7"}  # literals ignore case


def test_admin_level_routes_take_only_the_master_key(sample_host):
    order = f"/api/orders/{uuid.uuid4()}"
    with sample_host.client() as http:
        assert http.delete(order).status_code == 401
        assert http.delete(order, params={"code": FUNCTION_KEY}).status_code == 401
        assert http.delete(order, params={"code": MASTER_KEY}).status_code == 204
        assert http.delete("/api/orders/not-a-guid", params={"code": MASTER_KEY}).status_code == 404


def test_an_async_function_returning_str_answers_text_plain(sample_host):
    with sample_host.client() as http:
        response = http.get("/api/greeting", params={"name": "bo"})
    assert response.status_code == 200
    assert response.text == "hello bo"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


def test_an_unhandled_exception_is_a_500_and_is_logged(sample_host):
    with sample_host.client() as http:
        response = http.get("/api/boom")
    assert response.status_code == 500 and response.content == b""
    log = sample_host.log_file.read_text()
    assert "Executed 'Functions.boom' (Failed" in log and "RuntimeError: boom" in log


def test_home_page_is_anonymous_and_the_admin_api_needs_the_master_key(sample_host):
    assert httpx.get(sample_host.url + "/").status_code == 200
    status_url = sample_host.url + "/admin/host/status"
    assert httpx.get(status_url).status_code == 401
    assert httpx.get(status_url, headers={"x-functions-key": FUNCTION_KEY}).status_code == 401
    status = httpx.get(status_url, headers={"x-functions-key": MASTER_KEY}).json()
    assert status["state"] == "Running"
    assert status["extensionBundle"]["id"] == "Microsoft.Azure.Functions.ExtensionBundle"
