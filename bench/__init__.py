"""Benchmarks: `python -m bench` (or `make bench`) writes BENCHMARKS.md at the project root.

Each figure is a ratio against a bare ceiling measured in the same run, on loopback only.
Benchmarks are not tests: nothing under tests/ runs them and no test asserts a time.
"""
