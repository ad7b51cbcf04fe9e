"""Fraud detection on payment transactions (the UnionPay use case)."""
