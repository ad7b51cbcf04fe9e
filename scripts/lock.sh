#!/usr/bin/env bash
# `make lock`: regenerate the lock files in requirements/ from pyproject.toml, one per stack,
# every package at an exact version with its hashes. The set-up scripts install exactly these
# files, so a fresh machine months later gets the versions CI tested. A refresh is a
# deliberate commit: run this, read the diff, run `make test`, commit the locks.
#
# The locking tool is uv's `pip compile`, itself pinned here and installed into .venv-lock.
#   classic.lock   Python 3.11, TensorFlow 2.15 (cpu), PySpark 3.5, Horovod 0.28.1, every extra
#   current.lock   Python 3.12, TensorFlow 2.21 (cpu) + tf_keras, PySpark 4, every extra
#   data.lock      data-only wheels whose files the tests read, installed without dependencies
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
UV_VERSION=0.13.10
# Linux x86_64 with glibc >= 2.28 (Debian 10+, Ubuntu 20.04+, RHEL 8+): the wheels chosen must
# install there. Hashes cover every file of each chosen version, so the lock installs on other
# glibc Linux machines too wherever that version has a wheel for them.
PLATFORM=x86_64-manylinux_2_28

say() { printf '[lock] %s\n' "$*"; }
tools="$root/.venv-lock"
if ! "$tools/bin/uv" --version 2>/dev/null | grep -q " $UV_VERSION"; then
  say "installing uv $UV_VERSION into .venv-lock"
  python3 -m venv "$tools"
  "$tools/bin/python" -m pip install -q --disable-pip-version-check "uv==$UV_VERSION"
fi
uv="$tools/bin/uv"

compile() {  # compile OUT PYTHON EXTRA... : the project's dependencies with these extras
  local out=$1 python=$2; shift 2
  local extras=()
  for e in "$@"; do extras+=(--extra "$e"); done
  say "$out (Python $python, extras: $*)"
  "$uv" pip compile pyproject.toml "${extras[@]}" \
    --python-version "$python" --python-platform "$PLATFORM" \
    --override requirements/overrides.txt \
    --generate-hashes --no-strip-extras --quiet \
    --custom-compile-command "make lock" \
    --output-file "requirements/$out"
}
compile classic.lock 3.11 all cpu dev
compile current.lock 3.12 all cpu dev
say "data.lock (no dependencies)"
"$uv" pip compile requirements/data.in --no-deps --generate-hashes --quiet \
  --python-version 3.11 --python-platform "$PLATFORM" \
  --custom-compile-command "make lock" --output-file requirements/data.lock
say "done: review 'git diff requirements/', then run 'make test' before committing"
