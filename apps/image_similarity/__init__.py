"""Image similarity search with embeddings and binary codes (the MLSlistings use case)."""
