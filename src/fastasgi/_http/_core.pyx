"""The compiled hot path: HTTP/1.1 over the vendored llhttp parser, HTTP/2 over the vendored
nghttp2, and the WebSocket frame codec, as one extension.

This file holds the imports and the list of parts, nothing else (the parts are included in
the order below; each part is named for what it holds). Every cdef class is declared in
_core.pxd; typing and documentation of the Python-visible API live in _core.pyi.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_Copy, PyDict_GetItemWithError
from cpython.object cimport PyObject, PyObject_Call
from cpython.ref cimport Py_DECREF
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdlib cimport free, realloc
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memchr, memcmp, memcpy, memset

from .llhttp cimport *
from . cimport nghttp2
from .python cimport *

import asyncio
import collections
import email.utils
import http
import logging
import os
import stat
import sys
import time

from fastasgi import _defaults

# (A comment goes above its include, never after it: cython-lint reads the last word
# of an include line as the file name.)
# cached Python objects, wire literals, byte tables
include "consts.pxi"
# the growable C byte buffer
include "buf.pxi"
# what HTTP and WebSocket share: status lines, errors, headers, Date, framing
include "wire.pxi"
# request-target -> path, raw_path, query_string; Host syntax
include "target.pxi"
# per-process counters in C, read by the admin listener
include "metrics.pxi"
# llhttp trampolines
include "callbacks.pxi"
# ServerContext: settings read once, registries, the tick fan-out
include "context.pxi"
# RequestParser: llhttp and the request-head checks
include "parser.pxi"
# HttpProtocol: the connection state machine, flow control
include "protocol.pxi"
# the app driver: a real Task per request, started eagerly
include "driver.pxi"
# Exchange: the one ASGI request model of both protocols (receive, send, states, app end)
include "exchange.pxi"
# RequestCycle(Exchange): HTTP/1.1's wire effects (head, chunks, close)
include "cycle.pxi"
# nghttp2's callbacks, trampolines to the HTTP/2 connection and streams
include "h2callbacks.pxi"
# HTTP/2 over the vendored nghttp2: the connection
include "h2.pxi"
# H2Stream(Exchange): HTTP/2's wire effects (DATA, RST_STREAM, trailers)
include "h2stream.pxi"
# files as response bodies: the Path Send and Zero Copy Send extensions, both protocols
include "filesend.pxi"
# an HTTP/1.1 connection handed to WebSocket or HTTP/2
include "takeover.pxi"
# WebSocket frames: parse, unmask, UTF-8, reassemble, build (RFC 6455)
include "ws.pxi"
# WebSocket permessage-deflate (RFC 7692) on zlib
include "wsdeflate.pxi"
# WebSocket: the per-message path under the Python layer (receive, send, write batching)
include "wsconn.pxi"
