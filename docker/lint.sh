#!/usr/bin/env bash
# Checks everything in docker/ that can be checked without a container engine:
# the compose file, the Prometheus config and alert rules (with their unit
# tests), and the Dockerfile when hadolint is available (it is not packaged in
# Debian, so it is skipped there). Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")"

need() {
    command -v "$1" >/dev/null || { echo "lint: $1 not found (apt-get install -y $2)" >&2; exit 1; }
}
need docker-compose docker-compose
need promtool prometheus

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
if command -v hadolint >/dev/null; then
    hadolint Dockerfile
else
    echo "hadolint not installed: skipped"
fi

echo "lint: all checks passed"
