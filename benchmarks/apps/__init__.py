"""The ASGI apps the benchmark servers run (see benchmarks/scenarios.py)."""
