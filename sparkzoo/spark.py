"""Create the SparkSession every sparkzoo entry point runs on.

``import sparkzoo`` stays free of pyspark: its ``init_spark`` imports this module on first use.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from pyspark import InheritableThread, SparkConf, SparkContext
from pyspark.sql import SparkSession

T = TypeVar("T")

DEFAULT_MASTER = "local[*]"

# Applied unless the caller (or spark-submit) already set them.
_DEFAULT_CONF: dict[str, str] = {
    # Arrow moves columns between the JVM and Python workers (pandas/Arrow UDFs, mapInArrow).
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
    # A barrier stage asking for more slots than exist fails after this many checks rather
    # than re-checking for minutes (Spark's default is 40 checks, 15 s apart).
    "spark.scheduler.barrier.maxConcurrentTasksCheck.maxFailures": "3",
    "spark.scheduler.barrier.maxConcurrentTasksCheck.interval": "2s",
}

# Extra defaults for an in-process local master: everything on loopback, no UI port.
_LOCAL_CONF: dict[str, str] = {
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.ui.showConsoleProgress": "false",
}


def resolve_master(master: str | None = None) -> str:
    """The master URL to use: ``master`` if given, else ``SPARK_MASTER``, else ``local[*]``.

    A master set by ``spark-submit --master`` reaches the driver as the ``spark.master``
    system property; :func:`init_spark` keeps it by not overriding it (see there).
    """
    return master or os.environ.get("SPARK_MASTER") or DEFAULT_MASTER


def _submitted_conf() -> dict[str, str]:
    """Settings ``spark-submit`` gave this driver (``--master``, ``--conf``); empty otherwise.

    Under ``spark-submit`` Python starts with ``PYSPARK_GATEWAY_PORT`` set and the JVM already
    holds the settings; a plain ``python`` has no JVM yet, and starting one here would only
    report Spark's own defaults.
    """
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        return {}
    SparkContext._ensure_initialized()
    return dict(SparkConf().getAll())


def init_spark(
    master: str | None = None,
    app_name: str = "sparkzoo",
    log_level: str = "WARN",
    **conf: Any,
) -> SparkSession:
    """Create (or get) the SparkSession for sparkzoo.

    - master: ``master`` if given; otherwise the one ``spark-submit --master`` set; otherwise
      ``$SPARK_MASTER``; otherwise ``local[*]``.
    - Arrow is on, so pandas and Arrow UDFs and ``mapInArrow`` move columnar batches.
    - ``PYSPARK_PYTHON`` is set to the running interpreter (unless already set), so executor
      Python workers import this same environment (TensorFlow, Horovod, sparkzoo).
    - Spark's own logs are set to ``log_level`` (``WARN``).

    Keyword arguments are Spark settings; use underscores for dots
    (``spark_sql_shuffle_partitions=4``) or pass the full key in a dict (``**{"spark.x": 1}``).

    Example::

        from sparkzoo import init_spark
        spark = init_spark(app_name="demo")       # local[*]
        spark = init_spark("spark://127.0.0.1:7077", spark_executor_memory="2g")
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # local workers inherit it: no C++ chatter
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)

    submitted = _submitted_conf()
    master_url = master or submitted.get("spark.master") or resolve_master()
    settings = dict(_DEFAULT_CONF)
    if master_url.startswith("local"):
        settings.update(_LOCAL_CONF)
        # The local executor reports this address to barrier tasks; keep it on loopback.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    for key, value in conf.items():
        settings[key.replace("_", ".") if "." not in key else key] = value
    settings.setdefault("spark.pyspark.python", os.environ["PYSPARK_PYTHON"])
    settings.setdefault("spark.executorEnv.PYSPARK_PYTHON", os.environ["PYSPARK_PYTHON"])
    settings.setdefault(
        "spark.executorEnv.TF_CPP_MIN_LOG_LEVEL", os.environ["TF_CPP_MIN_LOG_LEVEL"]
    )

    builder = SparkSession.builder.master(master_url).appName(app_name)
    for key, value in settings.items():
        if key in submitted and key not in conf:
            continue  # spark-submit's --conf wins over our defaults
        builder = builder.config(key, str(value))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(log_level)
    return spark


def slot_count(spark: SparkSession) -> int:
    """How many tasks the cluster can run at once: the most a barrier stage may ask for.

    This is the figure Spark's own barrier check uses (executors registered now x their task
    slots), so a stage that fits it is never refused for want of slots.
    """
    jsc = spark.sparkContext._jsc.sc()
    profile = jsc.resourceProfileManager().defaultResourceProfile()
    return int(jsc.maxNumConcurrentTasks(profile))


def executor_name() -> str:
    """``host/executor-id`` of the executor running the current task (called in a task): a
    standalone executor runs in its work folder ``.../app-<id>/<executor id>``, which its Python
    workers inherit; local mode has the one executor, ``driver``."""
    cwd = os.getcwd()
    parent = os.path.basename(os.path.dirname(cwd))
    executor = os.path.basename(cwd) if parent.startswith("app-") else "driver"
    return f"{socket.gethostname()}/{executor}"


def in_background(fn: Callable[..., T], *args: Any, **kwargs: Any) -> Callable[[], T]:
    """Start ``fn(*args, **kwargs)`` on a thread that keeps this thread's Spark job group and
    local properties (``pyspark.InheritableThread``), so its jobs are cancelled with the
    caller's; returns a function that waits for it and returns its result or raises its
    exception.

    Example::

        columns = in_background(prepare_columns, df, ["x"], ["y"])
        model = build()          # meanwhile, on this thread
        data = columns()
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the caller by wait()
            outcome["error"] = exc

    thread = InheritableThread(target=run, daemon=True)
    thread.start()

    def wait() -> T:
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    return wait
