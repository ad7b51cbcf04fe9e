#!/usr/bin/env bash
# spark-submit the vae app: apps/vae/submit.sh [--master URL] --output DIR [flags...]
exec "$(dirname "$0")/../submit.sh" vae "$@"
