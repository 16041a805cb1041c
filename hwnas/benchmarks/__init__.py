"""Benchmark problems with known answers (tabular NAS benchmarks), for testing strategies and predictors.

Each module builds a search space, loads its tables and offers a lookup objective provider.
"""
