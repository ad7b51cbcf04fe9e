#!/usr/bin/env bash
# spark-submit the transfer_learning app: apps/transfer_learning/submit.sh [--master URL] --output DIR [flags...]
exec "$(dirname "$0")/../submit.sh" transfer_learning "$@"
