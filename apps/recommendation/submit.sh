#!/usr/bin/env bash
# spark-submit the recommendation app: apps/recommendation/submit.sh [--master URL] --output DIR [flags...]
exec "$(dirname "$0")/../submit.sh" recommendation "$@"
