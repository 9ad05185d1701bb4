"""Print what an input means to a harness: the decoded plan (fuzz_http) or case
(fuzz_target), one event a line, so a crash input can be read, reduced by hand and written
down as a unit test (fuzz/README.md).

    python3 fuzz/show.py fuzz_http fuzz/build/artifacts/fuzz_http/crash-...
"""

from __future__ import annotations

import importlib
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from fuzz._common import FuzzedDataProvider  # noqa: E402


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        sys.exit("usage: python3 fuzz/show.py HARNESS FILE...")
    harness = importlib.import_module("fuzz." + argv[0].removesuffix(".py"))
    for path in argv[1:]:
        with open(path, "rb") as f:
            value = harness.decode(FuzzedDataProvider(f.read()))
        print(f"== {path}")
        if isinstance(value, dict):
            for key, item in value.items():
                print(f"{key}: {item!r}")
            print(f"request: {harness.request_bytes(value)!r}")
            continue
        print(f"profile {value.profile}: {harness.PROFILES[value.profile]!r}")
        for i, b in enumerate(value.behaviours):
            print(f"request {i}: {b}")
        for op in value.ops:
            print(" ".join([op[0]] + [repr(x) for x in op[1:]]))


if __name__ == "__main__":
    main(sys.argv[1:])
