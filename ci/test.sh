#!/usr/bin/env bash
# Test tiers (Microsoft Recommenders style): unit (fast, every run) then integration (real redis-server,
# MLflow sqlite registry, bentoml serve, loopback LLM server, the real datasets in ../shared/data).
# Usage: ci/test.sh [unit|integration|all]
set -euo pipefail
cd "$(dirname "$0")/.."
tier="${1:-all}"
PY=.venv/bin/python
export MLFLOW_DISABLE_TELEMETRY=true BENTOML_DO_NOT_TRACK=True DGLBACKEND=pytorch HF_HUB_OFFLINE=1 \
  TRANSFORMERS_OFFLINE=1 SPARK_LOCAL_IP=127.0.0.1 PYTHONUNBUFFERED=1
export GLOM_DATA_DIR="${GLOM_DATA_DIR:-$(cd .. && pwd)/shared/data}"

ensure_system_packages() {
  # Integration tests start a real redis-server; install it through the system package manager.
  if ! command -v redis-server >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    else
      sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    fi
  fi
}

run_pytest() {
  # pytest exits 5 when a tier selects no test: that is a failure here, never a silent pass.
  "$PY" -m pytest "$@"
}

case "$tier" in
  unit) run_pytest -m "not integration" -q tests ;;
  integration) ensure_system_packages; run_pytest -m integration -q tests ;;
  all)
    run_pytest -m "not integration" -q tests
    ensure_system_packages
    run_pytest -m integration -q tests
    ;;
  *) echo "unknown tier $tier" >&2; exit 2 ;;
esac
