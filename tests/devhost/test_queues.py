"""Queue output bindings and queue triggers through devhost, checked in Azurite with azure-storage-queue."""

from __future__ import annotations

import base64
import json
import textwrap
import uuid
from pathlib import Path

from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from devhost.process import DevHostProcess
from tests.devhost.support import SAMPLE_APP, Records
from tests.support.polling import eventually


def raw_queue(connection_string: str, name: str) -> QueueClient:
    """A client that shows message text exactly as stored (no encode/decode policy)."""
    return QueueClient.from_connection_string(connection_string, name)


def base64_queue(connection_string: str, name: str) -> QueueClient:
    """How a producer must write to a queue whose trigger uses messageEncoding base64 (the default)."""
    return QueueClient.from_connection_string(
        connection_string, name, message_encode_policy=TextBase64EncodePolicy()
    )


def stored_texts(queue: QueueClient) -> list[str]:
    return [message.content for message in queue.peek_messages(max_messages=32)]


def test_queue_output_is_written_base64_encoded_into_a_queue_created_on_demand(sample_host, azurite):
    outbox = raw_queue(azurite, sample_host.env["OUTBOX_QUEUE"])
    single, first, second = (f"{tag}-{uuid.uuid4()}" for tag in ("single", "first", "second"))
    with sample_host.client() as http:
        assert http.post("/api/enqueue", json={"message": single}).status_code == 202
        # A list set on the Out parameter becomes one message per element.
        assert http.post("/api/enqueue", json={"messages": [first, second]}).status_code == 202
    texts = eventually(lambda: stored_texts(outbox), what="messages in the outbox")
    assert {base64.b64encode(m.encode()).decode() for m in (single, first, second)} <= set(texts)


def test_a_queue_triggered_function_gets_the_sdk_queue_message_with_its_metadata(
    sample_host, azurite, records
):
    body = f"ok:{uuid.uuid4()}"
    sent = base64_queue(azurite, sample_host.env["WORK_QUEUE"]).send_message(body)
    (seen,) = eventually(lambda: records("work", body=body), what="the work function to run")
    assert seen["type"] == "azure.functions.queue.QueueMessage"
    assert seen["id"] == sent.id
    assert seen["dequeue_count"] == 1
    assert seen["insertion_time"].startswith(sent.inserted_on.strftime("%Y-%m-%d %H:%M"))
    assert seen["pop_receipt"] and seen["function_name"] == "work"


def test_http_output_feeds_the_queue_trigger_end_to_end(sample_host, records):
    body = f"chain:{uuid.uuid4()}"
    with sample_host.client() as http:
        assert http.post("/api/submit", content=body.encode()).status_code == 202
    (seen,) = eventually(lambda: records("work", body=body), what="the work function to run")
    assert seen["dequeue_count"] == 1


def test_a_failing_message_is_retried_with_a_rising_dequeue_count_until_it_succeeds(
    sample_host, azurite, records
):
    body = f"fail-2:{uuid.uuid4()}"
    base64_queue(azurite, sample_host.env["WORK_QUEUE"]).send_message(body)
    attempts = eventually(
        lambda: len(records("work", body=body)) >= 3 and records("work", body=body), what="3 attempts"
    )
    assert sorted(a["dequeue_count"] for a in attempts) == [1, 2, 3]
    assert len({a["id"] for a in attempts}) == 1  # the same message each time
    poison = raw_queue(azurite, sample_host.env["WORK_QUEUE"] + "-poison")
    assert base64.b64encode(body.encode()).decode() not in _texts_if_exists(poison)


def test_after_max_dequeue_count_failures_the_original_message_moves_to_the_poison_queue(
    sample_host, azurite, records
):
    body = f"always-fail:{uuid.uuid4()}"
    base64_queue(azurite, sample_host.env["WORK_QUEUE"]).send_message(body)
    poison = raw_queue(azurite, sample_host.env["WORK_QUEUE"] + "-poison")
    stored = base64.b64encode(body.encode()).decode()  # the poison copy keeps the original encoding
    eventually(lambda: stored in _texts_if_exists(poison), what="the message in the poison queue")
    assert sorted(a["dequeue_count"] for a in records("work", body=body)) == [1, 2, 3]  # maxDequeueCount 3


def test_a_message_that_is_not_base64_goes_to_the_poison_queue_without_an_invocation(
    sample_host, azurite, records
):
    text = f"plain text, not base64 {uuid.uuid4()}"
    raw_queue(azurite, sample_host.env["WORK_QUEUE"]).send_message(text)
    poison = raw_queue(azurite, sample_host.env["WORK_QUEUE"] + "-poison")
    eventually(lambda: text in _texts_if_exists(poison), what="the undecodable message in the poison queue")
    assert not [r for r in records("work") if text in r["body"]]


def _texts_if_exists(queue: QueueClient) -> list[str]:
    try:
        return stored_texts(queue)
    except Exception:  # the poison queue is created with its first message
        return []


PLAIN_APP = textwrap.dedent(
    """
    import json, os, pathlib, uuid
    import azure.functions as func

    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="plain-jobs", connection="Jobs")
    def plain(msg: func.QueueMessage) -> None:
        folder = pathlib.Path(os.environ["SAMPLE_RECORD_DIR"]) / "plain"
        folder.mkdir(parents=True, exist_ok=True)
        record = {"body": msg.get_body().decode(), "dequeue_count": msg.dequeue_count}
        (folder / f"{uuid.uuid4().hex}.json").write_text(json.dumps(record))
        if record["body"].startswith("fail"):
            raise RuntimeError("fail")
    """
)
PLAIN_HOST_JSON = {
    "version": "2.0",
    "extensionBundle": {"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": "[4.*, 5.0.0)"},
    "extensions": {
        "queues": {"maxPollingInterval": "00:00:00.5", "maxDequeueCount": 2, "messageEncoding": "none"}
    },
}


def test_messageencoding_none_custom_connection_prepoisoned_and_delayed_messages(azurite, tmp_path: Path):
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "function_app.py").write_text(PLAIN_APP)
    (app_dir / "host.json").write_text(json.dumps(PLAIN_HOST_JSON))
    queue = raw_queue(azurite, "plain-jobs")
    poison = raw_queue(azurite, "plain-jobs-poison")
    queue.create_queue()
    # Received three times by someone else already: DequeueCount 3 > maxDequeueCount 2 when the host gets it.
    worn = f"worn-{uuid.uuid4()}"
    queue.send_message(worn)
    for _ in range(3):
        (message,) = queue.receive_messages(max_messages=1)
        queue.update_message(message, visibility_timeout=0)
    delayed = f"delayed-{uuid.uuid4()}"
    queue.send_message(delayed, visibility_timeout=2)  # the app's own delayed enqueue pattern
    records = Records(tmp_path / "records")
    env = {"Jobs": azurite, "SAMPLE_RECORD_DIR": str(tmp_path / "records")}
    with DevHostProcess(app_dir, env=env, log_file=tmp_path / "devhost.log"):
        plain = f"plain-{uuid.uuid4()}"
        queue.send_message(plain)  # messageEncoding none: plain text in, plain text to the function
        eventually(lambda: records("plain", body=plain), what="the plain message")
        eventually(lambda: worn in _texts_if_exists(poison), what="the worn message in the poison queue")
        eventually(lambda: records("plain", body=delayed), what="the delayed message once visible")
        failing = f"fail-{uuid.uuid4()}"
        queue.send_message(failing)
        eventually(
            lambda: failing in _texts_if_exists(poison), what="the failing message in the poison queue"
        )
        # Succeeded and poisoned messages are deleted from the queue.
        eventually(lambda: queue.get_queue_properties().approximate_message_count == 0, what="an empty queue")
    assert not records("plain", body=worn)  # poisoned on receipt, never invoked
    assert sorted(r["dequeue_count"] for r in records("plain", body=failing)) == [1, 2]
    assert records("plain", body=plain)[0]["dequeue_count"] == 1


def test_two_instances_on_one_queue_run_each_message_once_though_each_run_outlasts_the_visibility_timeout(
    azurite, tmp_path: Path
):
    """As Azure runs several instances of an app: each polls the queue and takes its own batches; a
    message being processed stays invisible to the other (the listener's lease, renewed), however
    long the run, far beyond host.json's visibilityTimeout (1 s here, the delay after a failure)."""
    queue = f"work-{uuid.uuid4().hex[:8]}"
    QueueClient.from_connection_string(azurite, queue).create_queue()
    env = {
        "AzureWebJobsStorage": azurite,
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "SAMPLE_RECORD_DIR": str(tmp_path / "records"),
        "WORK_QUEUE": queue,
        "OUTBOX_QUEUE": f"outbox-{uuid.uuid4().hex[:8]}",
        "TICK_SCHEDULE": "0 0 0 1 1 *",
    }
    hosts = [
        DevHostProcess(SAMPLE_APP, env={**env, "SAMPLE_INSTANCE": str(n)}, log_file=tmp_path / f"host{n}.log")
        for n in (1, 2)
    ]
    records = Records(tmp_path / "records")
    try:
        for host in hosts:
            host.start()
        bodies = [f"slow-2:{uuid.uuid4()}" for _ in range(12)]
        for body in bodies:
            base64_queue(azurite, queue).send_message(body)
        client = raw_queue(azurite, queue)

        def done() -> bool:  # every message deleted (in flight ones count too), each one's run recorded
            properties = client.get_queue_properties()
            return properties.approximate_message_count == 0 and len(records("work")) >= len(bodies)

        eventually(done, timeout=60, what="every message to run and be deleted", interval=0.2)
        runs = records("work")
        assert sorted(r["body"] for r in runs) == sorted(bodies)  # each once, none twice
        assert {r["dequeue_count"] for r in runs} == {1}  # none came back to either instance
    finally:
        for host in hosts:
            host.stop()
