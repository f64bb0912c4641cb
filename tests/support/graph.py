"""Helpers for tests that drive the emulated Microsoft Graph through msgraph-sdk."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import pytest
from msgraph.generated.models.o_data_errors.o_data_error import ODataError


async def graph_error(awaitable: Awaitable[Any]) -> ODataError:
    """The ODataError the call fails with (the test fails if it succeeds)."""
    with pytest.raises(ODataError) as caught:
        await awaitable
    return caught.value
