"""Packaging: ``pip install .`` gives a working ``exomi``, and the deployment package (what .funcignore
keeps) holds the Function app and indexes.

Both run offline. The fresh virtualenv gets the project with ``--no-deps --no-build-isolation
--no-index``: Python 3.11's venv brings setuptools 65.5 (the build backend), but the ``bdist_wheel``
command of that setuptools lives in the ``wheel`` package (which needs ``packaging``), so only those two
are lent from the shared venv while pip builds. The runtime dependencies are made importable from the
shared venv's site-packages (PYTHONPATH), as Azure puts them in ``.python_packages`` from
requirements.txt: what is proven is the project's own part (entry point, packages, package data).
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path, PurePosixPath

import pytest

from tests.contract.test_function_app import EXPECTED, INDEX
from tests.support.exomi import ROOT

SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])  # the shared venv's: the runtime dependencies
BUILD_TOOLS = ("wheel", "packaging")
PACKAGE_DATA = """
import json, shared
from shared import compatibility, policy, runbooks
from shared.settings import ExchangeEnvironment
print(json.dumps({
    "shared": shared.__file__,
    "matrix_hosts": compatibility.load_matrix() is not None,
    "default_roles": policy.default_policy_document()["allowed_roles"],
    "script": "Connect-ExchangeOnline" in runbooks.connect_script(
        "contoso.onmicrosoft.com", None, ExchangeEnvironment.DEFAULT),
}))
"""


def _requirement_pins(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text("utf-8").splitlines())
    return sorted(line for line in lines if line and not line.startswith("-"))


def test_pyproject_dependencies_are_the_pins_of_requirements_txt():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    assert sorted(project["dependencies"]) == _requirement_pins(ROOT / "requirements.txt")
    assert all("==" in pin for pin in project["dependencies"]), "every dependency is pinned"
    assert project["scripts"]["exomi"] == "shared.cli:entry"


def _ignored(relative: PurePosixPath, patterns: list[str]) -> bool:
    """.funcignore's gitignore-style rules as Core Tools and azd apply them to this file's patterns:
    a pattern without a slash matches a file or folder name at any depth."""
    for pattern in patterns:
        pattern = pattern.rstrip("/")
        if "/" in pattern:
            if fnmatch.fnmatch(str(relative), pattern.lstrip("/")):
                return True
        elif any(fnmatch.fnmatch(part, pattern) for part in relative.parts):
            return True
    return False


def build_deployment_package(source: Path, destination: Path) -> list[str]:
    """Copy what .funcignore keeps; returns the package's files (relative, sorted)."""
    patterns = [
        line.strip()
        for line in (source / ".funcignore").read_text("utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    files: list[str] = []
    for folder, dirnames, filenames in os.walk(source):
        here = Path(folder)
        kept_dirs = []
        for name in sorted(dirnames):
            relative = PurePosixPath((here / name).relative_to(source).as_posix())
            if _ignored(relative, patterns):
                continue
            # A symlinked folder (the shared .venv, node_modules) must be ignored, not deployed.
            assert not (here / name).is_symlink(), f"{relative} is a symlink that .funcignore keeps"
            kept_dirs.append(name)
        dirnames[:] = kept_dirs
        for name in sorted(filenames):
            relative = PurePosixPath((here / name).relative_to(source).as_posix())
            if _ignored(relative, patterns):
                continue
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(here / name, target)
            files.append(str(relative))
    return sorted(files)


def _env(*paths: Path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.pathsep.join(str(p) for p in paths)}


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> tuple[Path, list[str]]:
    destination = tmp_path_factory.mktemp("package")
    return destination, build_deployment_package(ROOT, destination)


def test_the_deployment_package_holds_the_app_and_nothing_of_the_development_tree(package):
    _, files = package
    for needed in (
        "function_app.py",
        "host.json",
        "requirements.txt",
        "shared/compatibility.json",
        "shared/default_policy.json",
        "shared/cli.py",
        "runbook_templates/connect-exchange-online.ps1",
        "runbook_templates/install-modules.sh",
    ):
        assert needed in files
    tops = {PurePosixPath(f).parts[0] for f in files}
    for never in ("tests", "emulator", "devhost", "infra", "azure.yaml", ".azure", "bench", "docs"):
        assert never not in tops, never
    assert not [f for f in files if f.endswith(".pyc") or "local.settings" in f]


def test_the_deployment_package_indexes_every_function(package):
    """The host imports function_app.py from the package folder, with the dependencies beside it."""
    destination, _ = package
    completed = subprocess.run(
        [sys.executable, "-c", INDEX],
        cwd=destination,
        env=_env(destination, SITE_PACKAGES),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    indexed = json.loads(completed.stdout.strip().splitlines()[-1])
    assert sorted(indexed) == sorted(EXPECTED)
    assert {name: f["bindings"] for name, f in indexed.items()} == EXPECTED


def test_pip_install_in_a_clean_virtualenv_gives_a_working_exomi(tmp_path):
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info next to pyproject.toml
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in tracked)):
        path = ROOT / name
        if path.is_file() and not path.is_symlink():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, source / name)
    shutil.copy2(ROOT / "pyproject.toml", source / "pyproject.toml")  # as it is now, committed or not

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    has_setuptools = subprocess.run([python, "-c", "import setuptools"], capture_output=True, timeout=60)
    assert has_setuptools.returncode == 0, "the venv brings setuptools (the build backend) offline"
    tools = tmp_path / "build-tools"
    tools.mkdir()
    for name in BUILD_TOOLS:
        for found in SITE_PACKAGES.glob(f"{name}*"):
            if found.name == name or found.name.endswith(".dist-info"):
                (tools / found.name).symlink_to(found)
    subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", str(source)],
        env={**_env(tools), "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_CONFIG_FILE": os.devnull},
        capture_output=True,
        check=True,
        timeout=180,
    )

    # Run from a folder without the sources: the installed package, not the checkout, must answer.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    helped = subprocess.run(
        [venv / "bin" / "exomi", "--help"],
        cwd=elsewhere,
        env=_env(SITE_PACKAGES),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage: exomi") and "provision" in helped.stdout

    data = subprocess.run(
        [python, "-c", PACKAGE_DATA],
        cwd=elsewhere,
        env=_env(SITE_PACKAGES),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded = json.loads(data.stdout)
    assert Path(loaded["shared"]).is_relative_to(venv), "shared comes from the virtualenv"
    assert loaded["matrix_hosts"] and "Global Reader" in loaded["default_roles"] and loaded["script"]
