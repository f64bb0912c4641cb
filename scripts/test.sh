#!/usr/bin/env bash
# Sets everything up, then runs lint and the whole test suite. The tests start what they need
# themselves (the tenant emulator, Azurite, the local Functions host) on free ports.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "==> ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "==> mypy"
.venv/bin/mypy  # shared/, function_app.py and devhost/ (pyproject.toml [tool.mypy]); 0 errors
echo "==> pytest"
# The tests mostly wait on I/O (emulated Azure delays, subprocesses): 4 workers, each with its own
# emulator and Azurite, use 2 cores well.
exec .venv/bin/python -m pytest -n 4 "$@"
