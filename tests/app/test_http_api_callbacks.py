"""Callbacks (issue 4, item 6): a request's callback URL (https, on an allow-listed host) receives the
final result, retried after a failure, with the external reference; the URL itself is never shown,
stored or logged (it may carry a signature)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from azure.data.tables import TableServiceClient

from shared.api.documents import RequestSummary
from tests.support.callback_receiver import CallbackReceiver


@pytest.fixture
def receiver(tmp_path) -> Iterator[CallbackReceiver]:
    receiver = CallbackReceiver(tmp_path / "receiver-tls").start()
    yield receiver
    receiver.stop()


def test_the_final_result_is_called_back_with_a_retry_after_a_failure(
    emulator, targets, start_api, receiver, tmp_path
):
    # exomi trusts the receiver's CA through the same setting that makes it trust the emulator's.
    bundle = tmp_path / "ca-bundle.pem"
    bundle.write_text(Path(emulator.ca_bundle).read_text() + receiver.ca_cert.read_text())
    # The receiver listens on a port of its own: the policy names it (a host alone means port 443).
    netloc = urlsplit(receiver.base_url).netloc
    api = start_api(env={"EXOMI_CA_BUNDLE": str(bundle)}, policy={"callback_hosts": [netloc]})
    callback_url = f"{receiver.base_url}/hooks/exomi?sig=s3cr3t-signature"
    receiver.respond_with(500)  # the first delivery fails; exomi tries again

    uai = targets.user_assigned_identity()
    accepted = api.post(
        "requests",
        {
            "target": uai.id,
            "organization": emulator.organization,
            "channel": "ticket",
            "external_reference": "CHG0042",
            "callback_url": callback_url,
        },
    )
    assert accepted.status_code == 202, accepted.text
    # While the request runs, state keeps the URL only encrypted: its signature is in no entity.
    assert "s3cr3t-signature" not in stored(api)
    final, _ = api.follow(accepted)
    assert final.status_code == 200

    first, second = receiver.wait_for_deliveries(2)
    assert (first.status, second.status) == (500, 200)
    assert second.path == "/hooks/exomi" and second.query == "sig=s3cr3t-signature"
    assert second.headers["x-exomi-request-id"] == accepted.json()["id"]
    # The callback body is the request's summary: the same fields the API answers with.
    delivered = RequestSummary.model_validate(second.body)
    assert delivered.status == "succeeded" and delivered.external_reference == "CHG0042"
    assert delivered.channel == "ticket" and delivered.id == final.json()["id"]
    assert second.body == {k: v for k, v in final.json().items() if k in RequestSummary.model_fields}

    read, callback = None, None
    deadline = time.monotonic() + 30
    while callback is None and time.monotonic() < deadline:  # the worker audits right after the call
        read = api.get(f"requests/{delivered.id}", params={"include": "audit"})
        callback = next((a for a in read.json()["audit"] if a["step"] == "callback"), None)
        time.sleep(0.1)
    assert callback is not None, read.json()["audit"]
    assert callback["action"] == "callback delivered (HTTP 200, attempt 2)"
    assert callback["after"] == {"status": "succeeded", "external_reference": "CHG0042"}

    # The URL (and its signature) appears in no answer and no log, and has left state now that it
    # was called (the audit record above is written after that).
    assert "s3cr3t-signature" not in read.text
    assert "s3cr3t-signature" not in stored(api)
    assert "s3cr3t-signature" not in api.host.log_file.read_text(errors="replace")


def stored(api) -> str:
    """Every entity of exomi's state tables, as text."""
    service = TableServiceClient.from_connection_string(api.storage)
    return "".join(
        str(dict(entity))
        for table in service.list_tables()
        if table.name.startswith(api.exomi.table_prefix)
        for entity in service.get_table_client(table.name).list_entities()
    )


def test_without_a_callback_key_callbacks_are_refused_naming_the_field(emulator, start_api):
    api = start_api(
        env={"EXOMI_CALLBACK_KEY": ""}, policy={"callback_hosts": ["*.logic.azure.com"]}, worker=False
    )
    body = {
        "target": f"/subscriptions/{emulator.subscription_ids[0]}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/mi1",
        "organization": emulator.organization,
        "callback_url": "https://prod-1.westeurope.logic.azure.com/cb?sig=x",
    }
    refused = api.post("requests", body)
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "callback_url"
    assert "EXOMI_CALLBACK_KEY" in refused.json()["error"]["message"]
    api.no_state()
