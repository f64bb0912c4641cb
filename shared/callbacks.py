"""Tell a caller's callback URL (Logic Apps webhook, a ticketing system) how its request ended.

The URL was checked when the request was accepted (https, a host on the policy's allow-list). It may
carry a signature (a Logic Apps callback's sig=), so state keeps it only encrypted (``seal``, with the
app setting EXOMI_CALLBACK_KEY) while the request runs, and drops it once it has been called. It is
called with a few retries; the outcome is audited, never the URL itself, and no log line shows it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
from cryptography.fernet import Fernet, InvalidToken

from shared.errors import ConcurrencyError, InputError
from shared.models import ProvisionRequest
from shared.settings import Settings
from shared.state.records import AuditRecord, RequestRecord
from shared.state.store import StateStore

log = logging.getLogger("exomi.callbacks")
# httpx logs every request's full URL at INFO; a callback URL's query may be a signature.
logging.getLogger("httpx").setLevel(logging.WARNING)
ATTEMPTS = 4
FIRST_DELAY_SECONDS = 1.0


def result_document(record: RequestRecord) -> dict[str, Any]:
    """The final result as callers see it: the request's summary, exactly as the HTTP API shows it."""
    # The API's document models are built when first needed: the exomi command rarely sends a callback.
    from shared.api.documents import summary

    return summary(record).model_dump(mode="json")


def seal(url: str, settings: Settings) -> str:
    """The URL encrypted for state. InputError naming callback_url when exomi has no key to keep it."""
    if settings.callback_key is None:
        raise InputError(
            "callback_url",
            "this exomi cannot take callbacks: it keeps callback URLs only encrypted, and its app setting "
            "EXOMI_CALLBACK_KEY is not set (ask the exomi operator), so leave callback_url out and poll Location",
        )
    return Fernet(settings.callback_key.get_secret_value().encode()).encrypt(url.encode()).decode()


def unseal(sealed: str, settings: Settings) -> str | None:
    if settings.callback_key is None:
        return None
    try:
        return Fernet(settings.callback_key.get_secret_value().encode()).decrypt(sealed.encode()).decode()
    except InvalidToken:
        log.error("a callback URL cannot be decrypted with EXOMI_CALLBACK_KEY (was the key changed?)")
        return None


async def deliver(record: RequestRecord, state: StateStore, settings: Settings) -> bool | None:
    """POSTs the result to the request's callback URL; None when it has none."""
    request = record.request
    url = unseal(record.callback, settings) if record.callback else None
    if url is None and isinstance(request, ProvisionRequest):
        url = request.callback_url  # kept in the clear by an earlier version of exomi
    if not url:
        return None
    body = result_document(record)
    delay = FIRST_DELAY_SECONDS
    outcome = "not delivered"
    async with httpx.AsyncClient(
        verify=str(settings.ca_bundle) if settings.ca_bundle else True, timeout=30
    ) as client:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                response = await client.post(url, json=body, headers={"x-exomi-request-id": record.id})
                if response.is_success:
                    outcome = f"delivered (HTTP {response.status_code}, attempt {attempt})"
                    break
                outcome = f"answered HTTP {response.status_code}"
                if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                    break  # the receiver refuses it; retrying cannot help
            except httpx.HTTPError as error:
                outcome = f"failed: {type(error).__name__}"
            if attempt < ATTEMPTS:
                await asyncio.sleep(delay)
                delay *= 2
    await _forget_url(record.id, state)
    delivered = outcome.startswith("delivered")
    log.log(logging.INFO if delivered else logging.WARNING, "callback for request %s %s", record.id, outcome)
    await state.audit.append(
        AuditRecord(
            request_id=record.id,
            step="callback",
            sequence=0,
            action=f"callback {outcome}",
            target=record.target,
            after={"status": record.status.value, "external_reference": record.external_reference},
            requested_by=record.requested_by,
            channel=record.channel,
        )
    )
    return delivered


async def _forget_url(request_id: str, state: StateStore) -> None:
    """Drop the callback URL from the stored request: it was needed for this delivery only."""
    for _ in range(3):
        record = await state.requests.get(request_id)
        request = record.request
        plain = isinstance(request, ProvisionRequest) and request.callback_url is not None
        if record.callback is None and not plain:
            return
        update: dict[str, object] = {"callback": None}
        if plain:
            update["request"] = request.model_copy(update={"callback_url": None})
        forgotten = record.model_copy(update=update)
        try:
            await state.requests.update(forgotten)
            return
        except ConcurrencyError:
            continue  # someone updated the request meanwhile: read it again
