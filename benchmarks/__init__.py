"""Benchmarks: each prints a table and one JSON line; run as python benchmarks/NAME.py."""
