"""NCF / Wide & Deep recommendation on MovieLens."""
