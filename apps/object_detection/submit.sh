#!/usr/bin/env bash
# spark-submit the object_detection app: apps/object_detection/submit.sh [--master URL] --output DIR [flags...]
exec "$(dirname "$0")/../submit.sh" object_detection "$@"
