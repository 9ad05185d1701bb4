"""fastasgi's benchmark harness: ASGI servers compared side by side, honestly.

Run ``python -m benchmarks --help`` from the repository root; see benchmarks/README.md.
"""
