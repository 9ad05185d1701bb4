# cython: language_level=3
"""The HTTP/1.1 hot path: an asyncio.Protocol over the vendored llhttp parser.

Typing and documentation of the Python-visible API live in _core.pyi.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_Copy
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdlib cimport free, realloc
from libc.string cimport memchr, memcmp, memcpy

from .llhttp cimport *

import asyncio
import email.utils
import http
import logging
import sys
import time


cdef extern from "Python.h":
    ctypedef enum PySendResult:
        PYGEN_RETURN
        PYGEN_ERROR
        PYGEN_NEXT
    PySendResult PyIter_Send(object iter, object arg, PyObject** presult) except? PYGEN_ERROR
    object PyContext_CopyCurrent()
    object PyMethod_New(object func, object self)
    int PyContext_Enter(object ctx) except -1
    int PyContext_Exit(object ctx) except -1


# Module-level Python objects cached as C globals once (STYLE.md 5).
cdef object aio_Task = asyncio.Task
cdef object aio_Task_new = asyncio.Task.__new__
cdef object aio_CancelledError = asyncio.CancelledError
cdef object aio_enter_task = asyncio.tasks._enter_task
cdef object aio_leave_task = asyncio.tasks._leave_task
cdef object error_log = logging.getLogger("fastasgi.error")
cdef object time_time = time.time
cdef bint TASK_TAKES_CONTEXT = sys.version_info >= (3, 11)     # Task(..., context=) is 3.11+

LLHTTP_VERSION = "%d.%d.%d" % (LLHTTP_VERSION_MAJOR, LLHTTP_VERSION_MINOR, LLHTTP_VERSION_PATCH)

# The ASGI spec version 2.4 promises that send() raises an OSError subclass once the client
# is gone, which is what ClientDisconnected is (uvicorn says 2.3 and drops such sends silently).
cdef dict ASGI_VERSIONS = {"version": "3.0", "spec_version": "2.4"}

# What an _on_* method returns to make llhttp stop with an error. Not -1: that value means
# "a Python exception is set" for these `except -1` methods.
cdef enum:
    FAIL = -2

cdef Py_ssize_t HIGH_WATER = 65536        # buffered request body before reading pauses
# Chunk extensions carry nothing an ASGI app can see; bytes of them per request past this
# are refused with 400, so a client cannot make the server read them without end.
cdef long long CHUNK_EXT_LIMIT = 16384
cdef Py_ssize_t COPY_LIMIT = 16384        # bodies up to this are copied into the head's write

cdef str HTTP_10 = "1.0"
cdef str HTTP_11 = "1.1"
cdef bytes EMPTY = b""
cdef bytes SLASH = b"/"
cdef str SLASH_STR = "/"
cdef str T_REQUEST = "http.request"
cdef str T_DISCONNECT = "http.disconnect"
cdef str T_START = "http.response.start"
cdef str T_BODY = "http.response.body"
cdef bytes CONTINUE_100 = b"HTTP/1.1 100 Continue\r\n\r\n"
cdef bytes LAST_CHUNK = b"0\r\n\r\n"
cdef bytes ERROR_HEADERS = b"content-type: text/plain; charset=utf-8\r\ncontent-length: "
cdef const char* HTTP_NAME = "HTTP"

# lengths of C literals compared against, named once
cdef enum:
    HTTP_NAME_LEN = 4               # "HTTP"
    HTTP_PREFIX_LEN = 7             # "http://"
    HTTPS_PREFIX_LEN = 8            # "https://"
    CHUNKED_LEN = 7                 # "chunked"

# --header-map: what becomes of request header fields whose name holds "_" (gunicorn 22's
# setting, same names and default)
cdef enum:
    HEADER_MAP_DROP = 0
    HEADER_MAP_REFUSE = 1
    HEADER_MAP_DANGEROUS = 2

cdef dict HEADER_MAPS = {"drop": HEADER_MAP_DROP, "refuse": HEADER_MAP_REFUSE,
                         "dangerous": HEADER_MAP_DANGEROUS}


class ClientDisconnected(OSError):
    """Raised by send() once the client has gone away (ASGI spec 2.4)."""


# --- prebuilt status lines and method names ---------------------------------------------

cdef list STATUS_LINES = []
cdef list REASONS = []
for _code in range(600):
    try:
        _phrase = http.HTTPStatus(_code).phrase
    except ValueError:
        _phrase = ""
    REASONS.append(_phrase)
    STATUS_LINES.append(("HTTP/1.1 %d %s\r\n" % (_code, _phrase)).encode("latin-1"))

cdef list METHODS = []
for _m in range(47):    # llhttp.h HTTP_ALL_METHOD_MAP numbers 0..46; others abort()
    METHODS.append(llhttp_method_name(<uint8_t>_m).decode("ascii"))


# --- the shared Date header --------------------------------------------------------------

def format_date(double timestamp):
    return email.utils.formatdate(timestamp, usegmt=True).encode("ascii")

cdef bytes date_line = b""
cdef long date_second = -1

cdef inline void refresh_date(double now):
    global date_line, date_second
    cdef long sec = <long>now
    if sec != date_second:
        date_second = sec
        date_line = b"date: " + format_date(now) + b"\r\n"

refresh_date(time_time())


def current_date_line():
    return date_line


# --- byte tables --------------------------------------------------------------------------

# RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
#                         "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
cdef unsigned char TOKEN[256]
cdef unsigned char LOWER[256]
for _i in range(256):
    TOKEN[_i] = 1 if (chr(_i).isascii() and chr(_i).isalnum()) or chr(_i) in "!#$%&'*+-.^_`|~" else 0
    LOWER[_i] = (_i + 32) if 65 <= _i <= 90 else _i


cdef inline bint lower_equals(const char* p, Py_ssize_t n, const char* lit, Py_ssize_t litlen) noexcept:
    cdef Py_ssize_t i
    if n != litlen:
        return False
    for i in range(n):
        if LOWER[<unsigned char>p[i]] != <unsigned char>lit[i]:
            return False
    return True


cdef inline bint lower_contains(const char* p, Py_ssize_t n, const char* lit, Py_ssize_t litlen) noexcept:
    cdef Py_ssize_t i, j
    for i in range(n - litlen + 1):
        for j in range(litlen):
            if LOWER[<unsigned char>p[i + j]] != <unsigned char>lit[j]:
                break
        else:
            return True
    return False


# Common request header names, shared instead of allocated per request.
cdef dict COMMON_NAMES = {}
for _n in (b"host", b"user-agent", b"accept", b"accept-encoding", b"accept-language",
           b"connection", b"content-type", b"content-length", b"cookie", b"origin",
           b"referer", b"authorization", b"cache-control", b"upgrade", b"x-forwarded-for",
           b"x-forwarded-proto", b"x-real-ip", b"transfer-encoding", b"expect",
           b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions",
           b"sec-websocket-protocol", b"pragma", b"if-none-match", b"if-modified-since"):
    COMMON_NAMES[_n] = _n
cdef list COMMON_BY_LEN = [[] for _ in range(32)]
for _n in COMMON_NAMES:
    COMMON_BY_LEN[len(_n)].append(_n)


cdef inline bytes make_name(const char* p, Py_ssize_t n):
    """Return the header name as lower-case bytes (p is already lower-cased)."""
    cdef bytes cand
    if n < 32:
        for cand in <list>COMMON_BY_LEN[n]:
            if memcmp(PyBytes_AS_STRING(cand), p, n) == 0:
                return cand
    return PyBytes_FromStringAndSize(p, n)


# --- C byte buffer ------------------------------------------------------------------------

cdef int buf_reserve(Buf* b, Py_ssize_t extra) except -1:
    cdef Py_ssize_t need = b.len + extra
    cdef Py_ssize_t cap
    cdef char* p
    if need <= b.cap:
        return 0
    cap = b.cap * 2 if b.cap else 1024
    if cap < need:
        cap = need
    p = <char*>realloc(b.data, cap)
    if p == NULL:
        raise MemoryError()
    b.data = p
    b.cap = cap
    return 0


cdef inline int buf_add(Buf* b, const char* s, Py_ssize_t n) except -1:
    if b.len + n > b.cap:
        buf_reserve(b, n)
    memcpy(b.data + b.len, s, n)
    b.len += n
    return 0


cdef inline int buf_add_bytes(Buf* b, bytes s) except -1:
    return buf_add(b, PyBytes_AS_STRING(s), PyBytes_GET_SIZE(s))


cdef inline int buf_add_int(Buf* b, long long v, int base) except -1:
    cdef char tmp[24]
    cdef int i = 24
    cdef int d
    if v == 0:
        return buf_add(b, "0", 1)
    while v > 0:
        d = v % base
        i -= 1
        tmp[i] = <char>(48 + d) if d < 10 else <char>(87 + d)
        v //= base
    return buf_add(b, &tmp[i], 24 - i)


cdef inline void buf_free(Buf* b) noexcept:
    if b.data != NULL:
        free(b.data)
    b.data = NULL
    b.len = 0
    b.cap = 0


# --- llhttp callbacks ---------------------------------------------------------------------
# Trampolines: no logic. They never let a Python exception escape into C: they store it on
# the protocol and return -1; _parse handles it after llhttp_execute returns.

cdef llhttp_settings_t SETTINGS


cdef int cb_on_message_begin(llhttp_t* p) noexcept:
    cdef HttpProtocol self = <HttpProtocol>p.data
    try:
        return self._on_message_begin()
    except BaseException as e:
        self.exc = e
        return -1


cdef int cb_on_method(llhttp_t* p, const char* at, size_t n) noexcept:
    cdef HttpProtocol self = <HttpProtocol>p.data
    try:
        return self._on_method(at, n)
    except BaseException as e:
        self.exc = e
        return -1


cdef int cb_on_url(llhttp_t* p, const char* at, size_t n) noexcept:
    cdef HttpProtocol self = <HttpProtocol>p.data
    try:
        return self._on_url(at, n)
    except BaseException as e:
        self.exc = e
        return -1


cdef int cb_on_protocol(llhttp_t* p, const char* at, size_t n) noexcept:
    cdef HttpProtocol self = <HttpProtocol>p.data
    try:
        return self._on_protocol(at, n)
    except BaseException as e:
        self.exc = e
        return -1


cdef int cb_on_header_field(llhttp_t* p, const char* at, size_t n) noexcept:
    cdef HttpProtocol self = <HttpProtocol>p.data
    try:
        return self._on_field_name(at, n)
    except BaseException as e:
        self.exc = e
        return -1


cdef int cb_on_header_value(llhttp_t* p, const char* at, size_t n) noexcept:
    cdef HttpProtocol self = <HttpProtocol>p.data
    try:
        return self._on_field_bytes(at, n)
    except BaseException as e:
        self.exc = e
        return -1


cdef int cb_on_header_value_complete(llhttp_t* p) noexcept:
    cdef HttpProtocol self = <HttpProtocol>p.data
    try:
        return self._on_header_value_complete()
    except BaseException as e:
        self.exc = e
        return -1


cdef int cb_on_headers_complete(llhttp_t* p) noexcept:
    cdef HttpProtocol self = <HttpProtocol>p.data
    try:
        return self._on_headers_complete()
    except BaseException as e:
        self.exc = e
        return -1


cdef int cb_on_chunk_extension(llhttp_t* p, const char* at, size_t n) noexcept:
    cdef HttpProtocol self = <HttpProtocol>p.data
    try:
        return self._on_chunk_extension(n)
    except BaseException as e:
        self.exc = e
        return -1


cdef int cb_on_body(llhttp_t* p, const char* at, size_t n) noexcept:
    cdef HttpProtocol self = <HttpProtocol>p.data
    try:
        return self._on_body(at, n)
    except BaseException as e:
        self.exc = e
        return -1


cdef int cb_on_message_complete(llhttp_t* p) noexcept:
    cdef HttpProtocol self = <HttpProtocol>p.data
    try:
        return self._on_message_complete()
    except BaseException as e:
        self.exc = e
        return -1


llhttp_settings_init(&SETTINGS)
SETTINGS.on_message_begin = cb_on_message_begin
SETTINGS.on_method = cb_on_method
SETTINGS.on_url = cb_on_url
SETTINGS.on_protocol = cb_on_protocol
SETTINGS.on_header_field = cb_on_header_field
SETTINGS.on_header_value = cb_on_header_value
SETTINGS.on_header_value_complete = cb_on_header_value_complete
SETTINGS.on_headers_complete = cb_on_headers_complete
SETTINGS.on_chunk_extension_name = cb_on_chunk_extension
SETTINGS.on_chunk_extension_value = cb_on_chunk_extension
SETTINGS.on_body = cb_on_body
SETTINGS.on_message_complete = cb_on_message_complete


# --- percent-decoding of the request path -------------------------------------------------

cdef inline int hexval(char c) noexcept:
    if 48 <= c <= 57:
        return c - 48
    if 97 <= c <= 102:
        return c - 87
    if 65 <= c <= 70:
        return c - 55
    return -1


cdef str decode_path(const char* p, Py_ssize_t n, Buf* scratch):
    """Percent-decode (RFC 3986 2.1) and decode as UTF-8, as urllib.parse.unquote does."""
    cdef Py_ssize_t i = 0
    cdef int hi, lo
    cdef char c
    scratch.len = 0
    buf_reserve(scratch, n)
    while i < n:
        c = p[i]
        if c == 37 and i + 2 < n:
            hi = hexval(p[i + 1])
            lo = hexval(p[i + 2])
            if hi >= 0 and lo >= 0:
                scratch.data[scratch.len] = <char>(hi * 16 + lo)
                scratch.len += 1
                i += 3
                continue
        scratch.data[scratch.len] = c
        scratch.len += 1
        i += 1
    return PyUnicode_DecodeUTF8(scratch.data, scratch.len, "replace")


# --- request validation: Host, request-target, Transfer-Encoding ----------------------------

cdef extern from "arpa/inet.h":
    int inet_pton(int af, const char* src, void* dst) nogil

cdef extern from "sys/socket.h":
    int AF_INET6

# RFC 3986 3.2.2: reg-name = *( unreserved / pct-encoded / sub-delims ), here without ",":
# a comma in Host is what several field lines combined into one look like (RFC 9110 5.3),
# and RFC 9110 7.2 allows exactly one Host value.
cdef unsigned char REGNAME[256]
# RFC 3986 3.2.2: IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )
cdef unsigned char IPVFUTURE[256]
cdef unsigned char HEXDIG[256]
for _i in range(256):
    _c = chr(_i)
    _unreserved = (_c.isascii() and _c.isalnum()) or _c in "-._~"
    REGNAME[_i] = 1 if _unreserved or _c in "!$&'()*+;=" else 0
    IPVFUTURE[_i] = 1 if _unreserved or _c in "!$&'()*+,;=:" else 0
    HEXDIG[_i] = 1 if _c in "0123456789abcdefABCDEF" else 0

# an IPv6 address in text, with room for the NUL (INET6_ADDRSTRLEN is 46)
DEF IPV6_TEXT_MAX = 46


cdef bint valid_authority(const char* v, Py_ssize_t n) noexcept:
    """RFC 9110 7.2: Host = uri-host [ ":" port ], with uri-host and port as RFC 3986 3.2.2
    and 3.2.3 define them. No userinfo (RFC 9110 4.2.4 treats it as an error), and no empty
    host: an http or https URI never has one (RFC 9110 4.2.1)."""
    cdef Py_ssize_t i = 0, j, end
    cdef char text[IPV6_TEXT_MAX]
    cdef unsigned char addr[16]
    cdef long port = 0
    if n == 0:
        return False
    if v[0] == c'[':
        # IP-literal = "[" ( IPv6address / IPvFuture ) "]"
        end = 1
        while end < n and v[end] != c']':
            end += 1
        if end >= n or end == 1:
            return False
        if v[1] == c'v' or v[1] == c'V':
            i = 2
            while i < end and HEXDIG[<unsigned char>v[i]]:
                i += 1
            if i == 2 or i + 1 >= end or v[i] != c'.':
                return False
            for j in range(i + 1, end):
                if not IPVFUTURE[<unsigned char>v[j]]:
                    return False
        else:
            if end - 1 >= IPV6_TEXT_MAX:
                return False
            memcpy(text, v + 1, end - 1)
            text[end - 1] = 0
            if inet_pton(AF_INET6, text, addr) != 1:
                return False
        i = end + 1
    else:
        # reg-name or IPv4address (every IPv4address is also a reg-name)
        while i < n and v[i] != c':':
            if v[i] == c'%':
                if i + 2 >= n or not HEXDIG[<unsigned char>v[i + 1]] or not HEXDIG[<unsigned char>v[i + 2]]:
                    return False
                i += 3
                continue
            if not REGNAME[<unsigned char>v[i]]:
                return False
            i += 1
        if i == 0:
            return False
    if i == n:
        return True
    if v[i] != c':':
        return False
    # port = *DIGIT (RFC 3986 3.2.3: it may be empty), and a number a TCP port can be
    for j in range(i + 1, n):
        if not (c'0' <= v[j] <= c'9'):
            return False
        port = port * 10 + (v[j] - c'0')
        if port > 65535:
            return False
    return True


cdef inline bint is_ows(char c) noexcept:
    return c == c' ' or c == c'\t'


cdef int transfer_coding_status(const char* v, Py_ssize_t n) noexcept:
    """The status a Transfer-Encoding field value earns: 0 when it is acceptable, 400 when it
    is malformed, 501 for a coding we do not implement (RFC 9112 6.1 SHOULD). Grammar (RFC
    9110 10.1.4, 5.6.1): #transfer-coding, transfer-coding = token *( OWS ";" OWS
    transfer-parameter ), transfer-parameter = token BWS "=" BWS ( token / quoted-string ).
    The one coding we implement, chunked, defines no parameters: with any it is malformed."""
    cdef Py_ssize_t i = 0, j, name_start, name_end
    cdef int status = 0
    cdef bint params
    while i < n:
        while i < n and (is_ows(v[i]) or v[i] == c','):     # empty list elements are allowed
            i += 1
        if i >= n:
            break
        name_start = i
        while i < n and TOKEN[<unsigned char>v[i]]:
            i += 1
        name_end = i
        if name_end == name_start:
            return 400
        params = False
        while True:
            while i < n and is_ows(v[i]):
                i += 1
            if i >= n or v[i] == c',':
                break
            if v[i] != c';':
                return 400
            params = True
            i += 1
            while i < n and is_ows(v[i]):
                i += 1
            j = i
            while i < n and TOKEN[<unsigned char>v[i]]:
                i += 1
            if i == j:
                return 400
            while i < n and is_ows(v[i]):
                i += 1
            if i >= n or v[i] != c'=':
                return 400
            i += 1
            while i < n and is_ows(v[i]):
                i += 1
            if i < n and v[i] == c'"':
                i += 1
                while i < n and v[i] != c'"':
                    i += 2 if v[i] == c'\\' else 1
                if i >= n:
                    return 400
                i += 1
            else:
                j = i
                while i < n and TOKEN[<unsigned char>v[i]]:
                    i += 1
                if i == j:
                    return 400
        if lower_equals(v + name_start, name_end - name_start, "chunked", CHUNKED_LEN):
            if params:
                return 400
        else:
            status = 501
    return status


# How the request-target reads (RFC 9112 3.2): _check_target's answers.
cdef enum:
    TARGET_ORIGIN = 0       # "/path?query", and "*" for OPTIONS
    TARGET_ABSOLUTE = 1     # "http://authority/path?query"


cdef Py_ssize_t authority_start(const char* u, Py_ssize_t n) noexcept:
    """Where the authority of an absolute-form target of an http or https URI begins (RFC
    9112 3.2.2; RFC 3986 3.1: schemes compare case-insensitively), or -1."""
    if n >= HTTP_PREFIX_LEN and lower_equals(u, HTTP_PREFIX_LEN, "http://", HTTP_PREFIX_LEN):
        return HTTP_PREFIX_LEN
    if n >= HTTPS_PREFIX_LEN and lower_equals(u, HTTPS_PREFIX_LEN, "https://", HTTPS_PREFIX_LEN):
        return HTTPS_PREFIX_LEN
    return -1


cdef Py_ssize_t authority_end(const char* u, Py_ssize_t n, Py_ssize_t start) noexcept:
    while start < n and u[start] != c'/' and u[start] != c'?':
        start += 1
    return start


# --- the server context -------------------------------------------------------------------

cdef class ServerContext:

    def __init__(self, app, loop, *, str root_path="", bint server_header=True,
                 bint date_header=True, extra_headers=None, Py_ssize_t max_header_bytes=65536,
                 Py_ssize_t max_headers=100, double keep_alive_timeout=5.0, state=None,
                 access_log=None, ws_upgrade=None, limit_concurrency=None,
                 max_body_size=None, timeout_request_head=None, timeout_request_body=None,
                 str header_map="drop"):
        cdef list lines = []
        if header_map not in HEADER_MAPS:
            raise ValueError("header_map must be one of %s, not %r"
                             % (", ".join(HEADER_MAPS), header_map))
        self.header_map = HEADER_MAPS[header_map]
        self.app = app
        self.loop = loop
        self.state = {} if state is None else state
        self.connections = set()
        self.tasks = set()
        self.active_requests = 0
        self.total_requests = 0
        self.shutting_down = False
        self.root_path = root_path
        self.server_header = server_header
        self.date_header = date_header
        self.server_line = b"server: fastasgi\r\n" if server_header else b""
        for name, value in extra_headers or ():
            name = name.encode("latin-1") if isinstance(name, str) else bytes(name)
            value = value.encode("latin-1") if isinstance(value, str) else bytes(value)
            check_header(name, value)
            lines.append(name + b": " + value + b"\r\n")
        self.extra_lines = b"".join(lines)
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers
        self.keep_alive_timeout = keep_alive_timeout
        self.access_log = access_log
        self.ws_upgrade = ws_upgrade
        self.limit_concurrency = limit_concurrency or 0
        self.max_body_size = -1 if max_body_size is None else max_body_size
        self.timeout_request_head = timeout_request_head or 0.0
        self.timeout_request_body = timeout_request_body or 0.0
        self.now = loop.time()
        refresh_date(time_time())

    def tick(self):
        cdef HttpProtocol proto
        cdef double now = self.loop.time()
        self.now = now
        refresh_date(time_time())
        for conn in list(self.connections):
            if type(conn) is not HttpProtocol:
                continue
            proto = <HttpProtocol>conn
            if proto.closing:
                continue
            if proto.cycle is None:
                if proto.in_head:
                    if self.timeout_request_head and now - proto.head_started > self.timeout_request_head:
                        proto._send_error(408)
                elif now - proto.idle_since >= self.keep_alive_timeout or (
                        self.shutting_down and (proto.served or now - proto.idle_since >= 1.0)):
                    proto._close()
            elif (self.timeout_request_body and proto.cycle.receive_waiter is not None
                  and not proto.cycle.body_complete
                  and now - proto.body_activity > self.timeout_request_body):
                proto._send_error(408)

    def begin_shutdown(self):
        self.shutting_down = True
        for conn in list(self.connections):
            conn.shutdown()


cpdef int check_header(bytes name, bytes value) except -1:
    """Response header validation: RFC 9110 5.1 names are tokens; 5.5 values may not hold
    CR, LF or NUL (which would split the response)."""
    cdef const char* p = PyBytes_AS_STRING(name)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(name)
    cdef Py_ssize_t i
    cdef unsigned char c
    if n == 0:
        raise RuntimeError("Invalid header name: empty")
    for i in range(n):
        if not TOKEN[<unsigned char>p[i]]:
            raise RuntimeError("Invalid header name %r" % (name,))
    p = PyBytes_AS_STRING(value)
    n = PyBytes_GET_SIZE(value)
    for i in range(n):
        c = <unsigned char>p[i]
        if c == 13 or c == 10 or c == 0:
            raise RuntimeError("Invalid header value %r for %r" % (value, name))
    return 0


# --- the protocol -------------------------------------------------------------------------
#
# Connection state rules (one connection, one HttpProtocol):
#   idle      cycle is None, in_head False: waiting for a request; tick() closes it once
#             keep_alive_timeout has passed since idle_since.
#   head      in_head True: a request has begun, its head is not complete; tick() answers 408
#             after timeout_request_head.
#   request   cycle is not None: one request is in progress. Its body is parsed as it comes
#             (reading pauses above HIGH_WATER until the app takes it). When its message is
#             complete, parsing stops (parse_paused) until its response is complete: the rest
#             of the bytes wait in `pending` and reading is paused, so a pipelining client
#             cannot make us buffer without bound and responses go out strictly in order.
#             The request ends when both the response and the request message are complete
#             (_cycle_done); an unread body is read and discarded first.
#   closing   we close after the current write; nothing more is parsed.
#   upgraded  handed to the WebSocket protocol; this object is done.

@cython.final
cdef class HttpProtocol:

    def __cinit__(self):
        self.head.data = NULL
        self.head.len = self.head.cap = 0
        self.out.data = NULL
        self.out.len = self.out.cap = 0

    def __dealloc__(self):
        buf_free(&self.head)
        buf_free(&self.out)

    def __init__(self, ServerContext ctx):
        self.ctx = ctx
        self.loop = ctx.loop
        llhttp_init(&self.parser, HTTP_REQUEST, &SETTINGS)
        self.parser.data = <void*>self
        self.cycle = None
        self.corked = None
        self.keep_alive_allowed = True

    # asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport):
        cdef ServerContext ctx = self.ctx
        self.transport = transport
        ctx.connections.add(self)
        self.idle_since = ctx.now
        sockname = transport.get_extra_info("sockname")
        peername = transport.get_extra_info("peername")
        server = client = None
        if isinstance(sockname, tuple):
            server = (sockname[0], sockname[1])
        elif isinstance(sockname, str) and sockname:
            server = (sockname, None)
        if isinstance(peername, tuple):
            client = (peername[0], peername[1])
        self.scheme = "https" if transport.get_extra_info("sslcontext") is not None else "http"
        # Every key of the http scope, so that the per-request copy (a memcpy of the key
        # table) only has values replaced, never keys inserted or the table resized.
        self.scope_template = {
            "type": "http",
            "asgi": ASGI_VERSIONS,
            "http_version": HTTP_11,
            "method": None,
            "scheme": self.scheme,
            "path": None,
            "raw_path": None,
            "query_string": EMPTY,
            "root_path": ctx.root_path,
            "headers": None,
            "client": client,
            "server": server,
            "state": None,
        }
        if ctx.shutting_down:
            self.keep_alive_allowed = False

    def connection_lost(self, exc):
        self.closing = True
        self.ctx.connections.discard(self)
        if self.cycle is not None:
            self.cycle._connection_lost()
        if self.drain_waiter is not None:
            waiter = self.drain_waiter
            self.drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def eof_received(self):
        # The client half-closed. Answer what it sent before (a client may shut down its
        # sending side and still wait for the answers), then close.
        cdef RequestCycle cycle = self.cycle
        self.eof = True
        if cycle is not None:
            if not cycle.body_complete:
                # the rest of the body can never arrive: the app sees http.disconnect
                cycle._connection_lost()
                return None
            # receive() reports http.disconnect (the client will send nothing more, which
            # is how long-polls learn it left); the response can still be written.
            cycle.peer_eof = True
            cycle._wake()
            return True
        if self.pending is not None:
            return True
        return None

    def pause_writing(self):
        self.writing_paused = True

    def resume_writing(self):
        self.writing_paused = False
        if self.parse_paused and self.cycle is None and not self.closing:
            self._unpause_parsing()
        if self.drain_waiter is not None:
            waiter = self.drain_waiter
            self.drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def data_received(self, bytes data):
        if self.closing:
            return
        if self.parse_paused or self.pending is not None:
            # behind a request in progress, or a resume of `pending` is already scheduled:
            # keep the byte order
            self.pending = data if self.pending is None else self.pending + data
            self._update_reading()
            return
        self._parse(data)

    # control from the server ------------------------------------------------------------

    def shutdown(self):
        self.keep_alive_allowed = False
        # A connection that has not sent a byte yet may have a request on its way: tick()
        # closes it after a short grace instead, so a client that connected just before
        # the shutdown is answered rather than reset.
        if self.cycle is None and not self.in_head and self.served:
            self._close()

    def abort(self):
        """Close now and cancel the app's task for the request in progress, if any."""
        cdef RequestCycle cycle = self.cycle
        self.closing = True
        if self.transport is not None:
            self.transport.abort()
        if cycle is not None:
            cycle._connection_lost()
            if cycle.task is not None and not cycle.task.done():
                cycle.task.cancel()

    # parsing ------------------------------------------------------------------------------

    cdef _parse(self, bytes data):
        cdef const char* base = PyBytes_AS_STRING(data)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
        cdef Py_ssize_t off = 0
        cdef llhttp_errno_t err
        cdef RequestCycle cycle
        self.corked = []
        self.corked_size = 0
        try:
            while True:
                self.feed_base = base + off
                self.feed_pos = self.stream_pos
                err = llhttp_execute(&self.parser, base + off, n - off)
                if self.exc is not None:
                    exc = self.exc
                    self.exc = None
                    error_log.error("Internal error while parsing a request", exc_info=exc)
                    self._send_error(500)
                    return
                if err == HPE_OK:
                    off = n
                elif err == HPE_PAUSED:
                    # paused by _on_message_complete: one whole request has been parsed
                    off = self.parser.error_pos - base
                    llhttp_resume(&self.parser)
                elif err == HPE_PAUSED_UPGRADE:
                    off = self.parser.error_pos - base
                    self._upgrade(data[off:])
                    return
                else:
                    self._send_error(self._error_status(err))
                    return
                self.stream_pos = self.feed_pos + (base + off - self.feed_base)
                cycle = self.cycle
                if cycle is not None and cycle.task is None and not cycle.response_started \
                        and not cycle.running:
                    self._start_cycle(cycle)
                    if self.closing:
                        return
                if err == HPE_OK:
                    if self.eof and self.cycle is None:
                        self._close()       # half-closed and nothing complete left to answer
                    return
                if self.cycle is not None or self.writing_paused:
                    # The response to the request just parsed is not complete, or the client
                    # is not reading what we answer: stop here and keep the rest until it
                    # is (responses strictly in order, nothing buffered without bound).
                    self.parse_paused = True
                    if off < n:
                        self.pending = data[off:]
                        self._update_reading()
                    # else reading goes on, so a disconnect is seen while the app works;
                    # data_received pauses it as soon as a next request arrives
                    return
                if off >= n:
                    return
        finally:
            self._uncork()

    cdef int _error_status(self, llhttp_errno_t err):
        if self.err_status:
            return self.err_status
        if err == HPE_INVALID_VERSION and self.parser.http_major >= 2:
            return 505
        return 400

    cdef inline long long _pos(self, const char* at) noexcept:
        """The stream position of a pointer into the buffer llhttp is executing on."""
        return self.feed_pos + (at - self.feed_base)

    cdef int _on_message_begin(self) except -1:
        self.in_head = True
        self.head_started = self.ctx.now
        self.head.len = 0
        self.url_len = 0
        self.name_len = 0
        self.headers = []
        self.field_count = 0
        self.host_count = 0
        self.proto_len = 0
        self.chunk_ext_bytes = 0
        self.head_start = -1
        self.line_mark = -1
        self.expect_continue = False
        self.is_websocket_upgrade = False
        self.body_received = 0
        return 0

    # The request line (RFC 9112 3): method SP request-target SP HTTP-version, one SP each.
    # llhttp skips any run of spaces; line_mark, the position past the previous token, lets
    # the next token check that exactly one SP came between. The head's size is counted from
    # head_start, the position of the method, so one limit covers line and fields together.

    cdef int _on_method(self, const char* at, size_t n) except -1:
        if self.head_start < 0:
            self.head_start = self._pos(at)
        self.line_mark = self._pos(at + n)
        return 0

    cdef int _on_url(self, const char* at, size_t n) except -1:
        cdef long long end = self._pos(at + n)
        if n == 0:
            return 0
        if self.url_len == 0 and self._pos(at) != self.line_mark + 1:
            self.err_status = 400
            return FAIL
        if end - self.head_start > self.ctx.max_header_bytes:
            # RFC 9112 3: a request-target longer than the server will parse is 414
            self.err_status = 414
            return FAIL
        if memchr(at, c'#', n) != NULL:
            # RFC 9112 3.2: a request-target carries no fragment (RFC 3986 3.5)
            self.err_status = 400
            return FAIL
        buf_add(&self.head, at, n)
        self.url_len += n       # only bytes that are in `head`: the access log reads them
        self.line_mark = end
        return 0

    cdef int _on_protocol(self, const char* at, size_t n) except -1:
        if n == 0:
            return 0
        if self.proto_len == 0 and self._pos(at) != self.line_mark + 1:
            self.err_status = 400
            return FAIL
        # RFC 9112 2.3: HTTP-name = %s"HTTP", case-sensitive. llhttp also takes "RTSP" and
        # "ICE": not HTTP, so not a request line of this protocol: 400.
        if self.proto_len + n > HTTP_NAME_LEN or memcmp(at, HTTP_NAME + self.proto_len, n) != 0:
            self.err_status = 400
            return FAIL
        self.proto_len += n
        return 0

    cdef int _on_field_name(self, const char* at, size_t n) except -1:
        self.name_len += n
        return self._on_field_bytes(at, n)

    cdef int _on_field_bytes(self, const char* at, size_t n) except -1:
        # a field line's name and value bytes go one after the other into self.head
        if self.head_start < 0:
            self.head_start = self._pos(at)     # the first byte of a trailer section
        if self._pos(at + n) - self.head_start > self.ctx.max_header_bytes:
            # RFC 6585 5: 431 for a header section (request line included) over the limit
            self.err_status = 431
            return FAIL
        buf_add(&self.head, at, n)
        return 0

    cdef int _on_chunk_extension(self, size_t n) except -1:
        self.chunk_ext_bytes += n
        if self.chunk_ext_bytes > CHUNK_EXT_LIMIT:
            self.err_status = 400
            return FAIL
        return 0

    cdef int _on_header_value_complete(self) except -1:
        cdef char* p = self.head.data + self.url_len
        cdef Py_ssize_t nlen = self.name_len
        cdef Py_ssize_t vlen = self.head.len - self.url_len - nlen
        cdef char* v = p + nlen
        cdef Py_ssize_t i
        cdef int status
        self.head.len = self.url_len        # the bytes stay readable until the next field
        self.name_len = 0
        self.field_count += 1
        if self.field_count > self.ctx.max_headers:
            self.err_status = 431
            return FAIL
        if not self.in_head:
            # A trailer field (RFC 9112 7.1.2). No ASGI event carries request trailers, so
            # none reaches the app: not those RFC 9110 6.5.1 forbids (Host, Content-Length,
            # Transfer-Encoding, Authorization, ...), nor any other. They are parsed under
            # the same limits as the head, then dropped.
            return 0
        # RFC 9110 5.5: OWS around a field value is not part of it (llhttp drops the
        # leading OWS, the trailing is ours to drop)
        while vlen > 0 and is_ows(v[vlen - 1]):
            vlen -= 1
        for i in range(nlen):
            p[i] = <char>LOWER[<unsigned char>p[i]]
        if memchr(p, c'_', nlen) != NULL and self.ctx.header_map != HEADER_MAP_DANGEROUS:
            # "X_Forwarded_For" passes a proxy that strips "X-Forwarded-For", and CGI-style
            # mappings (Django's META, WSGI environ) turn both into HTTP_X_FORWARDED_FOR
            if self.ctx.header_map == HEADER_MAP_REFUSE:
                self.err_status = 400
                return FAIL
            return 0
        self.headers.append((make_name(p, nlen), PyBytes_FromStringAndSize(v, vlen)))
        if nlen == 4 and memcmp(p, "host", 4) == 0:
            # RFC 9112 3.2: 400 for more than one Host field line or an invalid value
            self.host_count += 1
            if self.host_count > 1 or not valid_authority(v, vlen):
                self.err_status = 400
                return FAIL
        elif nlen == 17 and memcmp(p, "transfer-encoding", 17) == 0:
            status = transfer_coding_status(v, vlen)
            if status:
                self.err_status = status
                return FAIL
        elif nlen == 6 and memcmp(p, "expect", 6) == 0:
            if lower_equals(v, vlen, "100-continue", 12):
                self.expect_continue = True
        elif nlen == 7 and memcmp(p, "upgrade", 7) == 0:
            if lower_contains(v, vlen, "websocket", 9):
                self.is_websocket_upgrade = True
        return 0

    cdef int _check_target(self) except -1:
        """Which form the request-target has (RFC 9112 3.2), or FAIL with the status."""
        cdef const char* u = self.head.data
        cdef Py_ssize_t n = self.url_len
        cdef Py_ssize_t a
        cdef int method = self.parser.method
        if method == HTTP_CONNECT:
            # authority-form serves CONNECT only (RFC 9112 3.2.3), and a tunnel is nothing an
            # ASGI app can serve. 501, "not capable of supporting it for any resource" (RFC
            # 9110 15.6.2), rather than 405, which needs an Allow list the server cannot know.
            self.err_status = 501
            return FAIL
        if n > 0 and u[0] == c'/':
            return TARGET_ORIGIN
        if n == 1 and u[0] == c'*':
            # RFC 9112 3.2.4: asterisk-form is for a server-wide OPTIONS only
            if method == HTTP_OPTIONS:
                return TARGET_ORIGIN
            self.err_status = 400
            return FAIL
        a = authority_start(u, n)
        if a < 0 or not valid_authority(u + a, authority_end(u, n, a) - a):
            self.err_status = 400
            return FAIL
        return TARGET_ABSOLUTE

    cdef _use_target_authority(self):
        """RFC 9112 3.2.2: for an absolute-form target, the server ignores the Host field and
        uses the target's authority. The ASGI scope has no authority key and apps read the
        host from the "host" header, so that header carries the target's authority (as ASGI
        maps HTTP/2's :authority to "host")."""
        cdef const char* u = self.head.data
        cdef Py_ssize_t a = authority_start(u, self.url_len)
        cdef bytes authority = PyBytes_FromStringAndSize(u + a, authority_end(u, self.url_len, a) - a)
        cdef list headers = self.headers
        cdef Py_ssize_t i
        for i in range(len(headers)):
            if headers[i][0] == b"host":
                headers[i] = (headers[i][0], authority)
                return
        headers.append((b"host", authority))     # HTTP/1.0 may come without Host

    cdef int _on_headers_complete(self) except -1:
        cdef ServerContext ctx = self.ctx
        cdef RequestCycle cycle
        cdef dict scope
        cdef llhttp_t* p = &self.parser
        cdef int form
        self.served = True
        self.body_activity = ctx.now
        if p.http_major != 1:
            self.err_status = 505
            return FAIL
        form = self._check_target()
        if form == FAIL:
            return FAIL
        if p.http_minor == 1 and self.host_count == 0:
            # RFC 9112 3.2: 400 for an HTTP/1.1 request without Host (HTTP/1.0 may omit it)
            self.err_status = 400
            return FAIL
        if ctx.max_body_size >= 0 and (p.flags & F_CONTENT_LENGTH) and \
                <long long>p.content_length > ctx.max_body_size:
            self.err_status = 413
            return FAIL
        # An upgrade we do not speak (h2c, ...) is served as plain HTTP, and so is any
        # upgrade asked over HTTP/1.0: RFC 9110 7.8, a server MUST ignore Upgrade there.
        if p.upgrade and not (self.is_websocket_upgrade and p.http_minor == 1
                              and p.method == HTTP_GET and ctx.ws_upgrade is not None):
            p.upgrade = 0
        if not p.upgrade:
            self.is_websocket_upgrade = False
        self.in_head = False
        # a trailer section, if one comes, is counted and limited on its own
        self.head_start = -1
        self.field_count = 0
        if form == TARGET_ABSOLUTE:
            self._use_target_authority()

        scope = PyDict_Copy(self.scope_template)
        if p.http_minor == 0:
            scope["http_version"] = HTTP_10
        scope["method"] = <str>METHODS[p.method]
        scope["headers"] = self.headers
        scope["state"] = PyDict_Copy(ctx.state)
        self._fill_path(scope)

        cycle = RequestCycle.__new__(RequestCycle)
        cycle.proto = self
        cycle.scope = scope
        cycle.expected_length = -1
        cycle.is_head = p.method == HTTP_HEAD
        cycle.http10 = p.http_minor == 0
        cycle.keep_alive = bool(llhttp_should_keep_alive(p)) and self.keep_alive_allowed \
            and not ctx.shutting_down
        cycle.expect_continue = self.expect_continue and not cycle.http10
        cycle.body_complete = False
        cycle.peer_eof = self.eof
        if ctx.access_log is not None:
            cycle.start_time = time_time()
        self.cycle = cycle
        return 0

    cdef _fill_path(self, dict scope):
        cdef char* u = self.head.data
        cdef Py_ssize_t n = self.url_len
        cdef Py_ssize_t i = 0, path_start = 0, path_end, q_start = -1, q_end = 0
        cdef bint has_pct = False
        cdef bytes raw_path
        cdef str path
        cdef str root = self.ctx.root_path
        if n > 0 and u[0] != c'/':
            # absolute-form (RFC 9112 3.2.2): the path follows "scheme://authority"
            path_start = authority_start(u, n)
            path_start = authority_end(u, n, path_start) if path_start >= 0 else 0
        i = path_start
        while i < n and u[i] != 63 and u[i] != 35:
            if u[i] == 37:
                has_pct = True
            i += 1
        path_end = i
        if i < n and u[i] == 63:
            q_start = i + 1
            i += 1
            while i < n and u[i] != 35:
                i += 1
            q_end = i
        if path_end - path_start == 1 and u[path_start] == 47:
            raw_path = SLASH
            path = SLASH_STR
        elif path_end == path_start:
            raw_path = SLASH if u[0] != 42 else b"*"
            path = SLASH_STR
        else:
            raw_path = PyBytes_FromStringAndSize(u + path_start, path_end - path_start)
            if has_pct:
                path = decode_path(u + path_start, path_end - path_start, &self.out)
            else:
                path = PyUnicode_DecodeUTF8(u + path_start, path_end - path_start, "replace")
        if root:
            # The ASGI spec: path and raw_path include root_path (uvicorn >= 0.26 agrees).
            path = root + path
            raw_path = root.encode("utf-8") + raw_path
        scope["path"] = path
        scope["raw_path"] = raw_path
        scope["query_string"] = PyBytes_FromStringAndSize(u + q_start, q_end - q_start) \
            if q_start >= 0 else EMPTY

    cdef int _on_body(self, const char* at, size_t length) except -1:
        cdef RequestCycle cycle = self.cycle
        self.body_received += length
        self.body_activity = self.ctx.now
        if self.ctx.max_body_size >= 0 and self.body_received > self.ctx.max_body_size:
            self.err_status = 413
            return FAIL
        if cycle is not None and not cycle.body_discard:
            cycle._body_chunk(PyBytes_FromStringAndSize(at, length))
        return 0

    cdef int _on_message_complete(self) except -1:
        cdef RequestCycle cycle = self.cycle
        if cycle is not None:
            cycle._message_complete()
            if cycle.response_complete:
                self._cycle_done(cycle)
        if self.parser.upgrade:
            return 0    # llhttp returns HPE_PAUSED_UPGRADE
        return HPE_PAUSED

    # the request cycle ----------------------------------------------------------------------

    cdef _start_cycle(self, RequestCycle cycle):
        cdef ServerContext ctx = self.ctx
        # uvicorn compares the connection count with >=, which counts this connection
        # against itself (limit 1 would refuse everything); we allow `limit` of each.
        if ctx.limit_concurrency and (len(ctx.connections) > ctx.limit_concurrency
                                      or ctx.active_requests >= ctx.limit_concurrency):
            cycle.keep_alive = False
            self._send_error(503)
            return
        ctx.active_requests += 1
        ctx.total_requests += 1
        cycle.running = True
        cycle._run(ctx.app)

    cdef _cycle_done(self, RequestCycle cycle):
        """Both the response and the request message are complete."""
        if self.cycle is not cycle:
            return
        self.cycle = None
        self.idle_since = self.ctx.now
        if self.body_paused:
            self.body_paused = False
        if not cycle.keep_alive or not self.keep_alive_allowed or \
                (self.eof and self.pending is None):
            self._close()
            return
        if self.parse_paused:
            if not self.writing_paused:
                self._unpause_parsing()
        elif self.reading_paused:
            self._update_reading()

    cdef _unpause_parsing(self):
        self.parse_paused = False
        self._update_reading()
        if self.pending is not None:
            self.loop.call_soon(self._resume_parsing)

    def _resume_parsing(self):
        cdef bytes data = self.pending
        if data is None or self.closing or self.parse_paused:
            return      # closed meanwhile, or paused again: a later resume takes `pending`
        self.pending = None
        self._parse(data)

    cdef _update_reading(self):
        cdef bint want_pause = (self.parse_paused and self.pending is not None) or self.body_paused
        if self.transport is None or self.closing:
            return
        if want_pause and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()
        elif not want_pause and self.reading_paused:
            self.reading_paused = False
            self.transport.resume_reading()

    cdef _write(self, bytes data):
        if self.corked is not None:
            self.corked.append(data)
            self.corked_size += PyBytes_GET_SIZE(data)
            if self.corked_size < HIGH_WATER:
                return
            data = b"".join(self.corked)
            self.corked = []
            self.corked_size = 0
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    cdef _uncork(self):
        cdef list corked = self.corked
        self.corked = None
        self.corked_size = 0
        if corked and self.transport is not None and not self.transport.is_closing():
            if len(corked) == 1:
                self.transport.write(corked[0])
            else:
                self.transport.writelines(corked)
        if self.closing and self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    cdef _close(self):
        self.closing = True
        if self.corked is None and self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    cdef _send_error(self, int status, str reason=None):
        """Answer a request the app never saw (bad input, limits) and close."""
        cdef RequestCycle cycle = self.cycle
        cdef bytes body
        cdef Buf* b = &self.out
        if cycle is not None:
            if cycle.head_sent:
                self._close()
                cycle._connection_lost()
                return
            cycle.response_started = True
            cycle.head_sent = True
            cycle.response_complete = True
            cycle.keep_alive = False
            cycle.status = status
        if reason is None:
            reason = REASONS[status] if 0 <= status < 600 else ""
        body = reason.encode("latin-1")
        b.len = 0
        buf_add_bytes(b, STATUS_LINES[status])
        buf_add_bytes(b, self.ctx.server_line)
        if self.ctx.date_header:
            buf_add_bytes(b, date_line)
        buf_add_bytes(b, self.ctx.extra_lines)
        buf_add_bytes(b, ERROR_HEADERS)
        buf_add_int(b, len(body), 10)
        buf_add(b, "\r\nconnection: close\r\n\r\n", 23)
        buf_add_bytes(b, body)
        self._write(PyBytes_FromStringAndSize(b.data, b.len))
        if cycle is not None:
            self._log_access(cycle, len(body))
            cycle._connection_lost()
        elif self.ctx.access_log is not None and self.in_head:
            self._log_rejected_head(status, len(body))
        self._close()

    cdef _log_rejected_head(self, int status, Py_ssize_t nbytes):
        """Access-log a request refused before its head was complete (400, 413, 414, 431,
        501, 505): a scope holding what was parsed so far, "-" for what was not."""
        cdef dict scope = PyDict_Copy(self.scope_template)
        cdef bint have_target = self.url_len > 0
        scope["method"] = <str>METHODS[self.parser.method] if self.url_len > 0 else "-"
        if (self.parser.http_major or self.parser.http_minor) and \
                (self.parser.http_major != 1 or self.parser.http_minor != 1):   # 0.0: not parsed
            scope["http_version"] = "%d.%d" % (self.parser.http_major, self.parser.http_minor)
        if have_target:
            self._fill_path(scope)
        else:
            scope["path"] = "-"
            scope["raw_path"] = b"-"
        scope["headers"] = self.headers if self.headers is not None else []
        scope["state"] = {}
        try:
            self.ctx.access_log(scope, status, nbytes, 0.0)
        except BaseException:
            error_log.exception("Access log failed")

    cdef _log_access(self, RequestCycle cycle, long long nbytes):
        if self.ctx.access_log is not None:
            try:
                self.ctx.access_log(cycle.scope, cycle.status, cycle.sent_length or nbytes,
                                    time_time() - cycle.start_time)
            except BaseException:
                error_log.exception("Access log failed")

    cdef _upgrade(self, bytes leftover):
        cdef RequestCycle cycle = self.cycle
        cdef list corked = self.corked
        self.cycle = None
        self.ctx.connections.discard(self)
        self.corked = None
        if corked:
            self.transport.writelines(corked)
        try:
            proto = self.ctx.ws_upgrade(self.ctx, self.transport, cycle.scope, leftover)
        except BaseException as exc:
            error_log.error("WebSocket upgrade failed", exc_info=exc)
            self.ctx.connections.add(self)
            self.cycle = cycle
            self._send_error(500)
            return
        self.transport.set_protocol(proto)
        if self.reading_paused:
            self.reading_paused = False
            self.transport.resume_reading()
        transport = self.transport
        self.transport = None
        self.closing = True
        proto.connection_made(transport)
        if leftover:
            proto.data_received(leftover)


# --- the request cycle: receive(), send() and the app driver -------------------------------

@cython.final
@cython.freelist(8)
cdef class RequestCycle:

    # request side ---------------------------------------------------------------------------

    cdef _body_chunk(self, bytes chunk):
        cdef HttpProtocol proto = self.proto
        if self.body is None:
            self.body = chunk
        elif type(self.body) is bytes:
            self.body = [self.body, chunk]
        else:
            (<list>self.body).append(chunk)
        self.body_len += PyBytes_GET_SIZE(chunk)
        if self.body_len > HIGH_WATER and not proto.body_paused:
            proto.body_paused = True
            proto._update_reading()
        self._wake()

    cdef _message_complete(self):
        self.body_complete = True
        self._wake()

    cdef _connection_lost(self):
        self.disconnected = True
        self._wake()

    cdef inline _wake(self):
        cdef object waiter = self.receive_waiter
        if waiter is not None:
            self.receive_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    cdef object _take_body(self):
        cdef object body = self.body
        cdef HttpProtocol proto = self.proto
        self.body = None
        self.body_len = 0
        if proto.body_paused:
            proto.body_paused = False
            proto._update_reading()
        if type(body) is list:
            return b"".join(body)
        return body

    async def receive(self):
        cdef HttpProtocol proto
        while True:
            if self.disconnected or self.response_complete:
                return {"type": T_DISCONNECT}
            if self.body is not None:
                if self.body_complete:
                    self.body_delivered = True
                return {"type": T_REQUEST, "body": self._take_body(),
                        "more_body": not self.body_complete}
            if self.body_complete and not self.body_delivered:
                self.body_delivered = True
                return {"type": T_REQUEST, "body": EMPTY, "more_body": False}
            if self.peer_eof:
                return {"type": T_DISCONNECT}
            # Nothing more to hand out: wait for more body, the response or a disconnect.
            proto = self.proto
            if self.expect_continue:
                # RFC 9110 10.1.1: 100 Continue only once the app asks for the body.
                self.expect_continue = False
                if not self.response_started:
                    proto._write(CONTINUE_100)
            waiter = proto.loop.create_future()
            self.receive_waiter = waiter
            await waiter

    # response side --------------------------------------------------------------------------

    def send(self, message):
        """ASGI send. Does its work right away and returns an awaitable: the shared,
        already-complete _DONE when nothing has to wait (no coroutine object, no loop
        round-trip), or the connection's drain future while the transport is paused."""
        cdef HttpProtocol proto = self.proto
        cdef str mtype = message["type"]
        cdef object body
        cdef bint more
        if self.disconnected:
            raise ClientDisconnected("client disconnected")
        if mtype == T_BODY:
            if not self.response_started:
                raise RuntimeError(
                    "Unexpected ASGI message 'http.response.body' sent, before "
                    "'http.response.start'.")
            if self.response_complete:
                raise RuntimeError(
                    "Unexpected ASGI message 'http.response.body' sent, after response "
                    "already completed.")
            body = message.get("body", EMPTY)
            more = message.get("more_body", False)
            if type(body) is not bytes:
                body = bytes(body)
            self._send_body(<bytes>body, more)
            if proto.writing_paused and not self.disconnected:
                waiter = proto.drain_waiter
                if waiter is None:
                    waiter = proto.drain_waiter = proto.loop.create_future()
                return waiter
            return _DONE
        if mtype == T_START:
            if self.response_started:
                raise RuntimeError(
                    "Unexpected ASGI message 'http.response.start' sent, after response "
                    "already started.")
            status = message["status"]
            if type(status) is not int or not (100 <= <int>status <= 599):
                raise RuntimeError("Invalid HTTP status code %r in response." % (status,))
            self.status = status
            self.resp_headers = message.get("headers", ())
            self.response_started = True
            return _DONE
        raise RuntimeError("Unexpected ASGI message '%s' sent for an http scope." % (mtype,))

    cdef _send_body(self, bytes body, bint more):
        cdef HttpProtocol proto = self.proto
        cdef Py_ssize_t blen = PyBytes_GET_SIZE(body)
        cdef Buf* b = &proto.out
        cdef bint emit
        b.len = 0
        if not self.head_sent:
            self._build_head(body, not more)      # sets expected_length from the headers
        if self.expected_length >= 0 and not self.is_head and \
                self.sent_length + blen > self.expected_length:
            b.len = 0
            self.keep_alive = False
            raise RuntimeError("Response content longer than Content-Length")
        self.head_sent = True
        self.sent_length += blen
        emit = not (self.is_head or self.no_body)
        if emit and blen:
            if self.chunked:
                buf_add_int(b, blen, 16)
                buf_add(b, "\r\n", 2)
            if blen <= COPY_LIMIT:
                buf_add(b, PyBytes_AS_STRING(body), blen)
            else:
                if b.len:
                    proto._write(PyBytes_FromStringAndSize(b.data, b.len))
                    b.len = 0
                proto._write(body)
            if self.chunked:
                buf_add(b, "\r\n", 2)
        if not more:
            if emit and self.chunked:
                buf_add(b, "0\r\n\r\n", 5)
            if b.len:
                proto._write(PyBytes_FromStringAndSize(b.data, b.len))
            self._response_complete()
        elif b.len:
            proto._write(PyBytes_FromStringAndSize(b.data, b.len))

    cdef _build_head(self, object body_obj, bint final):
        """Write status line and headers into proto.out (STYLE.md 8: bytes go out once)."""
        cdef HttpProtocol proto = self.proto
        cdef ServerContext ctx = proto.ctx
        cdef Buf* b = &proto.out
        cdef bytes name, value
        cdef const char* np
        cdef const char* vp
        cdef Py_ssize_t nl, vl, i
        cdef bint has_server = False, has_date = False, has_connection = False
        cdef bint app_chunked = False
        cdef long long clen
        cdef int status = self.status
        cdef object headers = self.resp_headers
        cdef Py_ssize_t blen = PyBytes_GET_SIZE(<bytes>body_obj)

        # first pass: validate and find the headers that change framing
        for item in headers:
            name, value = item
            check_header(name, value)
            nl = PyBytes_GET_SIZE(name)
            np = PyBytes_AS_STRING(name)
            vp = PyBytes_AS_STRING(value)
            vl = PyBytes_GET_SIZE(value)
            if nl == 14 and lower_equals(np, nl, "content-length", 14):
                clen = 0
                if vl == 0 or vl > 18:
                    raise RuntimeError("Invalid Content-Length header: %r" % (value,))
                for i in range(vl):
                    if not (48 <= vp[i] <= 57):
                        raise RuntimeError("Invalid Content-Length header: %r" % (value,))
                    clen = clen * 10 + (vp[i] - 48)
                self.expected_length = clen
            elif nl == 17 and lower_equals(np, nl, "transfer-encoding", 17):
                if lower_contains(vp, vl, "chunked", 7):
                    app_chunked = True
            elif nl == 10 and lower_equals(np, nl, "connection", 10):
                has_connection = True
                if lower_contains(vp, vl, "close", 5):
                    self.keep_alive = False
            elif nl == 6 and lower_equals(np, nl, "server", 6):
                has_server = True
            elif nl == 4 and lower_equals(np, nl, "date", 4):
                has_date = True

        buf_add_bytes(b, <bytes>STATUS_LINES[status])
        if not has_server:
            buf_add_bytes(b, ctx.server_line)
        if ctx.date_header and not has_date:
            buf_add_bytes(b, date_line)
        buf_add_bytes(b, ctx.extra_lines)
        for item in headers:
            name, value = item
            buf_add_bytes(b, name)
            buf_add(b, ": ", 2)
            buf_add_bytes(b, value)
            buf_add(b, "\r\n", 2)

        # RFC 9112 6.3: 1xx, 204 and 304 responses never carry a body
        if status < 200 or status == 204 or status == 304:
            self.no_body = True
        elif self.expected_length >= 0:
            if app_chunked:
                raise RuntimeError("Response has both Content-Length and Transfer-Encoding")
        elif app_chunked:
            self.chunked = not self.is_head
        elif final:
            if blen or not self.is_head:
                buf_add(b, "content-length: ", 16)
                buf_add_int(b, blen, 10)
                buf_add(b, "\r\n", 2)
            self.expected_length = blen
        elif self.http10:
            self.keep_alive = False      # the body ends when the connection closes
        else:
            self.chunked = not self.is_head
            buf_add(b, "transfer-encoding: chunked\r\n", 28)

        if not proto.keep_alive_allowed or ctx.shutting_down:
            self.keep_alive = False
        if not has_connection:
            if not self.keep_alive:
                buf_add(b, "connection: close\r\n", 19)
            elif self.http10:
                buf_add(b, "connection: keep-alive\r\n", 24)
        buf_add(b, "\r\n", 2)

    cdef _response_complete(self):
        cdef HttpProtocol proto = self.proto
        self.response_complete = True
        self._wake()
        if self.expected_length >= 0 and not self.is_head and not self.no_body and \
                self.sent_length < self.expected_length:
            # Fewer bytes than declared: the client would wait for the rest. Close.
            self.keep_alive = False
            proto._close()
            raise RuntimeError("Response content shorter than Content-Length")
        proto._log_access(self, self.sent_length)
        if not self.keep_alive:
            proto._close()
            return
        if self.body_complete:
            proto._cycle_done(self)
        else:
            # The app answered without reading the whole body: read and drop the rest so the
            # connection can carry the next request.
            self.body_discard = True
            self.body = None
            self.body_len = 0
            if self.expect_continue:
                # the client waits for our 100 before sending a body we do not want
                self.keep_alive = False
                proto._close()
                return
            if proto.body_paused:
                proto.body_paused = False
                proto._update_reading()

    # the app driver -----------------------------------------------------------------------

    cdef _run(self, object app):
        """Run the app's first step right here: an app that never waits on anything finishes
        without an asyncio.Task being started or a loop round-trip. `task` is an
        uninitialised asyncio.Task that stands as the current task for that step (anyio,
        asyncio.timeout need one); it is initialised to drive the rest of the coroutine only
        if the app really suspends."""
        cdef HttpProtocol proto = self.proto
        cdef object loop = proto.loop
        cdef object context = PyContext_CopyCurrent()
        cdef object task = aio_Task_new(aio_Task)
        cdef PyObject* yielded = NULL
        cdef PySendResult res
        cdef object coro
        PyContext_Enter(context)
        try:
            try:
                # bound methods made directly: no attribute lookup through the type
                coro = app(self.scope, PyMethod_New(cycle_receive, self),
                           PyMethod_New(cycle_send, self))
            except BaseException as exc:
                self._app_failed(exc)
                return
            aio_enter_task(loop, task)
            try:
                res = PyIter_Send(coro, None, &yielded)
            except BaseException as exc:
                self._app_failed(exc)
                if isinstance(exc, (SystemExit, KeyboardInterrupt)):
                    raise       # as asyncio does for a Task: they stop the loop
                return
            finally:
                aio_leave_task(loop, task)
        finally:
            PyContext_Exit(context)
        result = <object>yielded
        Py_DECREF(result)
        if res == PYGEN_RETURN:
            self._app_returned(result)
            return
        # The app is waiting on something: a Task drives the rest, in the same context.
        self.task = task
        if TASK_TAKES_CONTEXT:
            task.__init__(_continue(self, coro, result), loop=loop, context=context)
        else:
            # Python 3.10: Task() copies the current context, so make it the request's
            PyContext_Enter(context)
            try:
                task.__init__(_continue(self, coro, result), loop=loop)
            finally:
                PyContext_Exit(context)
        proto.ctx.tasks.add(task)

    cdef _app_returned(self, object result):
        cdef HttpProtocol proto = self.proto
        self.running = False
        if self.task is not None:
            proto.ctx.tasks.discard(self.task)
            self.task = None
        proto.ctx.active_requests -= 1
        if result is not None:
            error_log.error("ASGI callable returned a value (%r); it should return None.", result)
        if self.disconnected:
            return
        if self.peer_eof and not self.response_started:
            # The client left (it half-closed, receive() said http.disconnect) and the app
            # gave up on it: no error, as uvicorn, and nothing more to answer.
            proto._close()
            self._connection_lost()
            return
        if not self.response_started:
            error_log.error("ASGI callable returned without starting response.")
            proto._send_error(500)
        elif not self.head_sent:
            # The head waits for the first body message, so nothing is on the wire yet: the
            # client gets the 500 that is logged, not an empty reply.
            error_log.error("ASGI callable returned without sending a response body.")
            proto._send_error(500)
        elif not self.response_complete:
            error_log.error("ASGI callable returned without completing response.")
            proto._close()
            self._connection_lost()

    cdef _app_failed(self, object exc):
        cdef HttpProtocol proto = self.proto
        self.running = False
        if self.task is not None:
            proto.ctx.tasks.discard(self.task)
            self.task = None
        proto.ctx.active_requests -= 1
        if self.disconnected and (isinstance(exc, (OSError, aio_CancelledError))
                                  or type(exc).__name__ == "ClientDisconnect"):
            error_log.debug("ASGI application ended after the client disconnected: %r", exc)
            return
        error_log.error("Exception in ASGI application\n", exc_info=exc)
        if self.disconnected:
            return
        if not self.head_sent:
            proto._send_error(500)
        elif not self.response_complete:
            # what was sent stays sent; the client sees the connection end early
            proto._close()
            self._connection_lost()


@cython.final
cdef class _Done:
    """An awaitable that is already complete, with the result None. Stateless, so one
    instance serves every send() that has nothing to wait for."""

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        raise StopIteration     # Cython returns NULL without an exception: result None

    def send(self, value):
        raise StopIteration

    def throw(self, typ, val=None, tb=None):
        if val is None:
            raise typ
        raise val

    def close(self):
        pass


cdef _Done _DONE = _Done()
cdef object cycle_receive = RequestCycle.__dict__["receive"]
cdef object cycle_send = RequestCycle.__dict__["send"]


async def _continue(RequestCycle cycle, object coro, object first):
    try:
        result = await _Resume(coro, first)
    except BaseException as exc:
        cycle._app_failed(exc)
        if isinstance(exc, (SystemExit, KeyboardInterrupt)):
            raise
    else:
        cycle._app_returned(result)


@cython.final
cdef class _Resume:
    """Hands a coroutine that suspended during its eager first step to the Task: yields what
    the coroutine yielded, and forwards what the Task sends or throws."""
    cdef object coro
    cdef object first

    def __cinit__(self, coro, first):
        self.coro = coro
        self.first = first

    def __await__(self):
        cdef object coro = self.coro
        cdef object value = self.first
        self.first = None
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:
                try:
                    value = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as stop:
                    return stop.value
