"""Benchmarks of issue #9: one script per target, run together by `make bench` (bench/run_all.py)."""
