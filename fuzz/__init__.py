"""atheris harnesses of the compiled HTTP/1.1 core (see fuzz/README.md).

A package so that the unit suite can import each harness's one-input function and replay the
seed corpora (tests/unit/test_fuzz_findings.py) without atheris.
"""
