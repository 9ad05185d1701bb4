"""The part of atheris.FuzzedDataProvider the harnesses use, in pure Python, and its inverse.

The harnesses take their decisions from ``atheris.FuzzedDataProvider`` while fuzzing. So that
a corpus file or a crash input replays where atheris is not installed (the unit suite, a
developer's machine), ``FuzzedDataProvider`` here consumes bytes exactly as atheris's does
(atheris src/native/fuzzed_data_provider.cc):

- ``ConsumeBytes`` and ``ConsumeBool`` read from the front of the input;
- ``ConsumeIntInRange`` and ``PickValueInList`` read whole bytes from the *end*, most
  significant first, as many as the width of ``max - min`` needs, and reduce modulo the range.

tests/unit/test_fuzz_findings.py checks the two agree wherever atheris is installed.

``Encoder`` is the inverse: given the values a harness should decode, it builds the input
bytes that decode to them (fuzz/make_corpus.py writes the seed corpora with it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _width(delta: int) -> int:
    """How many bytes ConsumeIntInRange reads for a range of ``delta + 1`` values."""
    n = 0
    while delta >> (8 * n):
        n += 1
    return n


class FuzzedDataProvider:
    """atheris.FuzzedDataProvider's ConsumeBytes, ConsumeBool, ConsumeIntInRange,
    PickValueInList and remaining_bytes, byte for byte."""

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        self._front = 0  # next byte read from the front
        self._end = len(self._data)  # one past the next byte read from the end

    def remaining_bytes(self) -> int:
        return self._end - self._front

    def ConsumeBytes(self, count: int) -> bytes:
        n = min(count, self.remaining_bytes())
        out = self._data[self._front : self._front + n]
        self._front += n
        return out

    def ConsumeBool(self) -> bool:
        if not self.remaining_bytes():
            return False
        value = self._data[self._front] & 1
        self._front += 1
        return bool(value)

    def ConsumeIntInRange(self, lo: int, hi: int) -> int:
        if hi < lo:
            raise ValueError("ConsumeIntInRange: min must be <= max")
        delta = hi - lo
        result = 0
        for _ in range(_width(delta)):
            if not self.remaining_bytes():
                break
            self._end -= 1
            result = (result << 8) | self._data[self._end]
        return lo + result % (delta + 1)

    def PickValueInList(self, values: Sequence[Any]) -> Any:
        return values[self.ConsumeIntInRange(0, len(values) - 1)]


class Encoder:
    """Builds the input that makes a FuzzedDataProvider return the given values, in the order
    the decoder asks for them."""

    def __init__(self) -> None:
        self._front = bytearray()
        self._back = bytearray()  # in the order the decoder reads them (from the end)

    def bytes(self, data: bytes) -> None:
        """The next ConsumeBytes(len(data)) returns ``data``."""
        self._front += data

    def bool(self, value: bool) -> None:
        self._front.append(1 if value else 0)

    def int_in_range(self, lo: int, hi: int, value: int) -> None:
        if not lo <= value <= hi:
            raise ValueError(f"{value} is not in [{lo}, {hi}]")
        width = _width(hi - lo)
        offset = value - lo
        for i in reversed(range(width)):
            self._back.append((offset >> (8 * i)) & 0xFF)

    def pick(self, values: Sequence[Any], value: Any) -> None:
        self.int_in_range(0, len(values) - 1, list(values).index(value))

    def data(self) -> bytes:
        return bytes(self._front) + bytes(reversed(self._back))
