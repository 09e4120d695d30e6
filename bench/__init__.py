"""Benchmarks (not collected by pytest): ``python bench/run.py``."""
