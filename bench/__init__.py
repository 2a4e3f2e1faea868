"""Benchmarks: every figure printed next to the raw Azurite rate measured in the same run."""
