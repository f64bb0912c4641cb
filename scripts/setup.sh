#!/usr/bin/env bash
# Sets up everything exomi needs on a fresh machine: a virtualenv in .venv with the pinned Python
# packages (app + dev), the project installed in editable mode (the `exomi` command), the Azure CLI in
# .venv-azcli (for tests/azcli), and the Node tools from package-lock.json (Azurite). Safe to run
# again; it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.requirements.sha
want=$(cat requirements.txt requirements-dev.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "==> installing Python packages"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r requirements-dev.txt
  .venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
  echo "$want" > "$stamp"
fi

# The Azure CLI for tests/azcli, in a virtualenv of its own (azure-cli pins its own azure-* packages).
stamp=.venv-azcli/.requirements.sha
want=$(sha256sum requirements-azcli.txt | cut -d' ' -f1)
if [ ! -x .venv-azcli/bin/az ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "==> installing the Azure CLI into .venv-azcli"
  [ -x .venv-azcli/bin/python ] || "$PYTHON" -m venv .venv-azcli
  .venv-azcli/bin/python -m pip install --quiet -r requirements-azcli.txt
  echo "$want" > "$stamp"
fi

if [ ! -x node_modules/.bin/azurite ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "==> installing Node tools (Azurite)"
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "==> set-up complete"
