#!/usr/bin/env bash
# spark-submit the image_similarity app: apps/image_similarity/submit.sh [--master URL] --output DIR [flags...]
exec "$(dirname "$0")/../submit.sh" image_similarity "$@"
