#!/usr/bin/env bash
# Sets everything up, then runs the exomi demo locally against the tenant emulator and Azurite.
# It starts what it needs, shows its progress, prints a summary and leaves nothing running.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m devhost.demo "$@"
