"""LSTM time-series anomaly detection (the Baosight use case)."""
