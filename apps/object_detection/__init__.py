"""Detect -> crop -> embed -> HDFS pipeline (the JD.com use case)."""
