#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh machine; idempotent.
# Run from anywhere: it works relative to the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."

# A gRPC client that is not ours (tests/keda_python_client.rs).
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
  -r tests/python/requirements.txt
