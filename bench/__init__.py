"""Benchmarks: each script runs a bare baseline and the project in the same run and prints both.

``python -m bench`` runs them all; ``python -m bench.<name> [--quick]`` runs one. See
``bench/README.md`` for what each measures and ``bench/RESULTS.md`` for figures. Nothing
here is imported by the product or asserted on by the tests.
"""
