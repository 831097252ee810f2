"""Benchmarks and measuring tools of the fp8gemm repository (not installed with the package).

Run from the repository root: ``python benchmarks/bench.py`` (or ``python -m fp8gemm bench`` in a
checkout), ``python -m benchmarks.jit_selftest``.
"""
