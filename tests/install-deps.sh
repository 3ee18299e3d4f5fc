#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh machine; idempotent.
# Run from anywhere: it works relative to the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."

# A gRPC client that is not ours (tests/keda_python_client.rs).
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
  -r tests/python/requirements.txt

# A real Prometheus server and promtool (tests/prometheus_source.rs): the
# Debian package provides /usr/bin/prometheus and /usr/bin/promtool.
install_prometheus() {
  if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
    return 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  # The package's postinst starts its service; tests start their own server.
  # Deny service starts while apt runs (policy-rc.d exit 101, honoured by
  # invoke-rc.d and deb-systemd-invoke), so the install exits 0 with or
  # without an init system and leaves no daemon behind. A policy already in
  # place (as in Docker images) is left alone.
  local policy=/usr/sbin/policy-rc.d added=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    added=1
  fi
  local rc=0
  { apt-get update -qq &&
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null; } || rc=$?
  if [ -n "$added" ]; then rm -f "$policy"; fi
  if [ "$rc" -ne 0 ]; then
    echo "install-deps: apt-get install prometheus failed (exit $rc)" >&2
    return "$rc"
  fi
  if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
    echo "install-deps: prometheus/promtool still missing after install" >&2
    return 1
  fi
}
install_prometheus
