#!/usr/bin/env bash
# Every test tier (unit, spark, hdfs, slow) plus ruff, with the project's .venv.
# `make test` and .ci/run call this. Extra arguments go to pytest.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py="$root/.venv/bin/python"
[ -x "$py" ] || { echo "[test] no .venv: run 'make setup' first" >&2; exit 1; }

"$root/.venv/bin/ruff" check . || { echo "[test] ruff found problems" >&2; exit 1; }

# -m "" lifts the default 'fast only' selection of pyproject.toml: every marker runs.
"$py" -m pytest -m "" "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "[test] pytest collected no tests: that is a failure, not a pass" >&2
  exit 1
fi
exit "$rc"
