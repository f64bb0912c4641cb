#!/usr/bin/env bash
# Sets everything up, then runs lint and the whole test suite. The tests start what they need
# themselves (the tenant emulator, Azurite, the local Functions host) on free ports.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "==> ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "==> pytest"
exec .venv/bin/python -m pytest "$@"
