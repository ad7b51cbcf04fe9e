#!/usr/bin/env bash
# spark-submit one sparkzoo app: apps/submit.sh APP [--master URL] [app flags...]
# Each app's own submit.sh calls this. The master defaults to $SPARK_MASTER, else local[*];
# the Python that runs driver and executors is $PYTHON (default: the python3 on PATH, which
# must have sparkzoo installed, e.g. the project's .venv).
set -euo pipefail
app="${1:?usage: submit.sh APP [--master URL] [app flags...]}"
shift
master="${SPARK_MASTER:-local[*]}"
if [[ "${1:-}" == "--master" ]]; then
    master="${2:?--master needs a URL}"
    shift 2
fi
python="${PYTHON:-python3}"
main=$("$python" -c "import sparkzoo.apps.$app.__main__ as m; print(m.__file__)")
spark_submit=$("$python" -c "import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), 'bin', 'spark-submit'))")
local_conf=()
if [[ "$master" == local* ]]; then
    # a laptop or CI run stays on loopback (the executor and the Horovod rendezvous too)
    local_conf=(--conf spark.driver.host=127.0.0.1 --conf spark.driver.bindAddress=127.0.0.1)
    export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"
fi
export PYSPARK_PYTHON="$python" PYSPARK_DRIVER_PYTHON="$python"
exec "$spark_submit" --master "$master" --name "sparkzoo-$app" "${local_conf[@]}" \
    --conf spark.ui.enabled=false "$main" "$@"
