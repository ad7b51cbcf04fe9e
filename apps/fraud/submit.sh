#!/usr/bin/env bash
# spark-submit the fraud app: apps/fraud/submit.sh [--master URL] --output DIR [flags...]
exec "$(dirname "$0")/../submit.sh" fraud "$@"
