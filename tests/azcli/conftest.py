"""Fixtures for the Azure CLI suite: each test gets a fresh tenant (``emulator``), its own az
configuration directory, and az logged in as the admin through the cloud registered for the emulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.azcli import AZ, AzCli


@pytest.fixture(scope="session", autouse=True)
def az_installed() -> None:
    if not AZ.exists():
        # scripts/setup.sh (which scripts/test.sh runs first) installs it: a missing az is a broken set-up,
        # and a skipped suite would pass for one that never ran.
        pytest.fail(f"{AZ} is missing: run scripts/setup.sh")


@pytest.fixture
def az(emulator, tmp_path, request) -> Iterator[AzCli]:
    """az with the emulator's cloud registered and active, not logged in."""
    cli = AzCli(emulator, tmp_path / "azure")
    cli.register_cloud()
    yield cli
    request.node.user_properties.append(("az_commands", cli.commands))


def pytest_terminal_summary(terminalreporter) -> None:
    """How many az processes the suite ran (each test's own az; xdist brings the counts back)."""
    counts = [
        value
        for reports in terminalreporter.stats.values()
        for report in reports
        for name, value in getattr(report, "user_properties", [])
        if name == "az_commands" and getattr(report, "when", None) == "teardown"
    ]
    if counts:
        terminalreporter.write_line(f"az commands run: {sum(counts)} in {len(counts)} tests")


@pytest.fixture
def admin_az(az, emulator) -> AzCli:
    """az logged in with the admin's managed identity (Owner on every subscription)."""
    az.login(emulator.admin_client_id)
    return az
