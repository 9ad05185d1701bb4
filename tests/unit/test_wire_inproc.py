"""The wire tables (tests/support/wire_cases.py) fed to the protocol in-process.

Each case runs against tests/apps/core_app.py on a fresh connection over the fake transport,
delivered whole, byte by byte, and cut in two at every split point (the split points of one
case are a loop inside one test, so a 70 KB case is one test, not 70 000). The checks are
those of the e2e suite, exactly:

- the bytes written are the expected bytes (``date_header=False``), nothing is written after
  the close, and the transport was closed (then connection_lost delivered);
- no app task is left running;
- BAD cases: the request after the bad one (``GET /mark/<token>``) never reached the app.

Timers of the app (``/sleep``) run on the fake clock: ``run_timers`` jumps to each.
"""

from __future__ import annotations

import uuid

import pytest

from apps import core_app
from support.inproc import connect, feed, make_ctx, run_timers
from support.wire_cases import BAD, GOOD, LIMIT_CTX, LIMITS, expected_bad, smuggled

MODES = ["whole", "bytewise"]


def run_case(loop, data: bytes, split, **ctx_kw):
    """One connection, ``data`` delivered in pieces, app timers run: the transport and
    the context, after the generic checks."""
    ctx = make_ctx(core_app.app, loop, **ctx_kw)
    proto, transport = connect(ctx)
    feed(proto, data, split)
    run_timers(loop)
    assert transport.writes_after_close == [], f"split {split!r}: wrote after close"
    assert not ctx.tasks, f"split {split!r}: app tasks left running: {ctx.tasks}"
    return transport, ctx


def check(transport, expected: bytes, split) -> None:
    out = transport.output()
    if out != expected:
        pytest.fail(f"split {split!r}:\n got      {out[:600]!r}\n expected {expected[:600]!r}")
    assert transport.closed, f"split {split!r}: connection not closed after the last response"
    assert transport.lost, f"split {split!r}: connection_lost was not delivered"


def splits(data: bytes):
    return range(1, len(data))


# --------------------------------------------------------------------------- GOOD


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name,request_bytes,expected", GOOD, ids=[c[0] for c in GOOD])
def test_good(loop, name, request_bytes, expected, mode):
    transport, _ = run_case(loop, request_bytes, mode)
    check(transport, expected, mode)


@pytest.mark.parametrize("name,request_bytes,expected", GOOD, ids=[c[0] for c in GOOD])
def test_good_every_split(loop, name, request_bytes, expected):
    for k in splits(request_bytes):
        transport, _ = run_case(loop, request_bytes, k)
        check(transport, expected, k)


# --------------------------------------------------------------------------- BAD


def check_bad(loop, name, data, code, split, token, **ctx_kw):
    transport, _ = run_case(loop, data, split, **ctx_kw)
    check(transport, expected_bad(name, code), split)
    assert token not in core_app.REGISTRY, f"split {split!r}: the request after the bad one ran"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name,request_bytes,code", BAD, ids=[c[0] for c in BAD])
def test_bad(loop, name, request_bytes, code, mode):
    token = uuid.uuid4().hex
    check_bad(loop, name, request_bytes + smuggled(token), code, mode, token)


@pytest.mark.parametrize("name,request_bytes,code", BAD, ids=[c[0] for c in BAD])
def test_bad_every_split(loop, name, request_bytes, code):
    token = uuid.uuid4().hex
    data = request_bytes + smuggled(token)
    for k in splits(data):
        check_bad(loop, name, data, code, k, token)


@pytest.mark.parametrize("mode", [*MODES, "every_split"])
@pytest.mark.parametrize("name,request_bytes,code", LIMITS, ids=[c[0] for c in LIMITS])
def test_limits(loop, name, request_bytes, code, mode):
    """The BAD checks under the smaller limits of LIMIT_CTX (--limit-request-head-size 2048,
    --limit-request-fields 10 in the e2e suite)."""
    token = uuid.uuid4().hex
    data = request_bytes + smuggled(token)
    for split in splits(data) if mode == "every_split" else [mode]:
        check_bad(loop, name, data, code, split, token, **LIMIT_CTX)


# --------------------------------------------------------------------------- conformance

try:  # the e2e suite's RFC 9110/9112 table, when there is one: same checks as BAD
    from e2e.test_conformance import REFUSED
except ImportError:
    REFUSED = []


@pytest.mark.parametrize("mode", [*MODES, "every_split"])
@pytest.mark.parametrize("name,request_bytes,code", REFUSED, ids=[c[0] for c in REFUSED])
def test_conformance_refused(loop, name, request_bytes, code, mode):
    token = uuid.uuid4().hex
    data = request_bytes.replace(b"{T}", token.encode()) + smuggled(token)
    for split in splits(data) if mode == "every_split" else [mode]:
        check_bad(loop, name, data, code, split, token)
