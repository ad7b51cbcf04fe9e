"""Recipes that train the shipped weights through the distributed trainer (one command each)."""
