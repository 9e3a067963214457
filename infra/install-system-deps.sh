#!/usr/bin/env bash
# System packages the local stack needs beyond the Python venv: a Java runtime and Maven (the
# Kafka broker is assembled from Maven Central jars by `python -m kaizen.infra.kafka fetch`), and Chromium
# for the headless dashboard test.
# Idempotent: a quick no-op when everything is present. Installs only as root with apt-get;
# otherwise it prints what is missing and how to get it, and exits non-zero.
set -euo pipefail

missing_cmds=()
packages=()

need() {  # need <command> <apt package>
    if ! command -v "$1" >/dev/null 2>&1; then
        missing_cmds+=("$1")
        packages+=("$2")
    fi
}

need java openjdk-17-jre-headless
need mvn maven
# Chromium (headless) drives the dashboard test in tests/integration/test_dashboard.py; only the
# test suite needs it (`--browser`), not the demo.
if [ "${1:-}" = "--browser" ]; then
    need chromium chromium
fi

if [ "${#missing_cmds[@]}" -eq 0 ]; then
    exit 0
fi

echo "install-system-deps: missing ${missing_cmds[*]}"
if [ "${EUID:-$(id -u)}" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${packages[@]}"
    exit 0
fi

echo "install-system-deps: please install: ${packages[*]}" >&2
echo "  Debian/Ubuntu: sudo apt-get install -y ${packages[*]}" >&2
echo "  macOS (Homebrew): brew install openjdk@17 maven" >&2
exit 1
