#!/usr/bin/env bash
# spark-submit the anomaly_detection app: apps/anomaly_detection/submit.sh [--master URL] --output DIR [flags...]
exec "$(dirname "$0")/../submit.sh" anomaly_detection "$@"
