"""The debug build of the core (FASTASGI_DEBUG=1) checks every state transition against the
tables at the top of src/fastasgi/_http/protocol.pxi and cycle.pxi. tests/e2e/test_unit_suite_debug_build.py
runs this whole suite once against such a build; these tests tell the two runs apart."""

from __future__ import annotations

import asyncio
import os

import pytest

from fastasgi._http import _core
from support.inproc import connect, make_ctx

IN_DEBUG_RUN = os.environ.get("FASTASGI_DEBUG_RUN") == "1"


def test_debug_checks_catch_an_illegal_transition():
    """In a debug build, CLOSED -> CLOSED (connection_lost twice, which asyncio never does)
    is refused; a release build compiles the check away."""
    loop = asyncio.new_event_loop()
    try:
        proto, _ = connect(make_ctx(None, loop))
        proto.connection_lost(None)
        assert proto.state_name == "CLOSED"
        if _core.DEBUG:
            with pytest.raises(AssertionError, match="CLOSED -> CLOSED"):
                proto.connection_lost(None)
        else:
            proto.connection_lost(None)
    finally:
        loop.close()


def test_this_run_has_the_build_it_expects():
    assert _core.DEBUG is IN_DEBUG_RUN
