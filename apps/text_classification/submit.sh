#!/usr/bin/env bash
# spark-submit the text_classification app: apps/text_classification/submit.sh [--master URL] --output DIR [flags...]
exec "$(dirname "$0")/../submit.sh" text_classification "$@"
