"""Fixtures for the Azure CLI suite: each test gets a fresh tenant (``emulator``), its own az
configuration directory, and az logged in as the admin through the cloud registered for the emulator."""

from __future__ import annotations

import os

import pytest

from tests.support.azcli import AZ, AzCli


@pytest.fixture(scope="session", autouse=True)
def az_installed() -> None:
    if not AZ.exists():
        message = f"{AZ} is missing: run scripts/setup.sh"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI runs setup.sh first: a missing az is a broken set-up
        pytest.skip(message)


@pytest.fixture
def az(emulator, tmp_path) -> AzCli:
    """az with the emulator's cloud registered and active, not logged in."""
    cli = AzCli(emulator, tmp_path / "azure")
    cli.register_cloud()
    return cli


@pytest.fixture
def admin_az(az, emulator) -> AzCli:
    """az logged in with the admin's managed identity (Owner on every subscription)."""
    az.login(emulator.admin_client_id)
    return az
