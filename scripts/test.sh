#!/usr/bin/env bash
# Every test tier (unit, spark, hdfs, slow) plus ruff with the classic stack's .venv, then,
# when .venv-current exists, the current stack's share: the fast tier, every shipped weight
# against its card, the trainer's spark tests on the tf engine, the wheel installed into a fresh
# venv (tests/test_wheel.py), and one app end to end (object detection on local[2]).
# `make test` and .ci/run call this. Extra arguments go to the classic pytest run.
#   --current-only   skip the classic suite (`make test-current`)
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

classic=1
if [ "${1:-}" = "--current-only" ]; then classic=0; shift; fi

# pytest's exit 5 (no test collected) is a failure, not a pass.
run_pytest() {
  local label=$1 py=$2; shift 2
  "$py" -m pytest "$@"
  local rc=$?
  if [ "$rc" -eq 5 ]; then
    echo "[test] $label: pytest collected no tests: that is a failure, not a pass" >&2
    return 1
  fi
  return "$rc"
}

status=0
if [ "$classic" = 1 ]; then
  py="$root/.venv/bin/python"
  [ -x "$py" ] || { echo "[test] no .venv: run 'make setup' first" >&2; exit 1; }
  "$root/.venv/bin/ruff" check . || { echo "[test] ruff found problems" >&2; exit 1; }
  # -m "" lifts the default 'fast only' selection of pyproject.toml: every marker runs.
  echo "[test] classic stack (.venv): every tier"
  # --durations: the slowest tests, to keep the whole run within its time budget.
  run_pytest classic "$py" -m "" --durations=30 "$@" || status=1
fi

py="$root/.venv-current/bin/python"
if [ -x "$py" ]; then
  start=$(date +%s)
  echo "[test] current stack (.venv-current): fast tier"
  run_pytest "current, fast tier" "$py" || status=1
  echo "[test] current stack (.venv-current): shipped weights against their cards, the" \
       "trainer on the tf engine (fit, transform, resume, failures, Spark ML and MLflow" \
       "contracts), the wheel in a fresh venv, one app end to end"
  run_pytest "current, cards + trainer + app" "$py" -m "not hdfs" \
    tests/test_models_pretrained.py \
    tests/test_trainer_spark.py \
    tests/test_trainer_tf_engine.py \
    tests/test_trainer_contracts.py \
    tests/test_wheel.py \
    tests/test_app_object_detection.py::test_run_writes_features_metrics_and_previews \
    tests/test_app_object_detection.py::test_search_duplicates_and_visualise \
    || status=1
  echo "[test] current stack took $(( $(date +%s) - start ))s"
elif [ "$classic" = 0 ]; then
  echo "[test] no .venv-current: run 'make setup-current' first" >&2
  exit 1
else
  echo "[test] no .venv-current: the current stack is not tested ('make setup-current' creates it)"
fi
exit "$status"
