"""Real services on loopback for demos and tests: a Spark standalone cluster and an HDFS."""
