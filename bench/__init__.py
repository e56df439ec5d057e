"""Benchmarks: each prints a table comparing Raccord with a baseline measured in the same run."""
