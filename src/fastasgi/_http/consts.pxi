# --- module-level Python objects, cached as C globals once ------------------------------------

cdef object aio_Task = asyncio.Task
cdef object aio_CancelledError = asyncio.CancelledError
cdef object error_log = logging.getLogger("fastasgi.error")
cdef object time_time = time.time
cdef bint TASK_TAKES_CONTEXT = sys.version_info >= (3, 11)     # Task(..., context=) is 3.11+


cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    cdef struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk_id, timespec* tp)
    int CLOCK_MONOTONIC


cdef inline double monotonic() noexcept nogil:
    """The clock of every timeout (the one time.monotonic() reads), without a Python call."""
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <double>ts.tv_sec + <double>ts.tv_nsec * 1e-9

LLHTTP_VERSION = "%d.%d.%d" % (LLHTTP_VERSION_MAJOR, LLHTTP_VERSION_MINOR, LLHTTP_VERSION_PATCH)


# what tests read to know which nghttp2 is linked in
def nghttp2_version() -> str:
    # 0: no minimum version (nghttp2_version() returns NULL only below the minimum asked for)
    cdef nghttp2.nghttp2_info* info = nghttp2.nghttp2_version(0)
    return info.version_str.decode("ascii")


def nghttp2_has_security_options() -> bool:
    # These two options come from Debian's patches, not from upstream 1.52.0: a build against
    # an unpatched nghttp2 fails to compile or link here (_h2_setup uses them too).
    cdef nghttp2.nghttp2_option* option = NULL
    if nghttp2.nghttp2_option_new(&option) != 0:
        raise MemoryError()
    nghttp2.nghttp2_option_set_stream_reset_rate_limit(option, 1000, 33)
    nghttp2.nghttp2_option_set_max_continuations(option, 8)
    nghttp2.nghttp2_option_del(option)
    return True


# A debug build (FASTASGI_DEBUG=1 when building, see setup.py) checks every state transition
# against the tables at the top of protocol.pxi, exchange.pxi and h2.pxi; a release build compiles the
# checks away.
cdef extern from *:
    """
    #ifndef FASTASGI_DEBUG
    #define FASTASGI_DEBUG 0
    #endif
    """
    const bint FASTASGI_DEBUG

DEBUG = bool(FASTASGI_DEBUG)

# The ASGI spec version 2.4 promises that send() raises an OSError subclass once the client
# is gone, which is what ClientDisconnected is (uvicorn says 2.3 and drops such sends silently).
cdef dict ASGI_VERSIONS = {"version": "3.0", "spec_version": "2.4"}

# What an _on_* method returns to make llhttp stop with an error. Not -1: that value means
# "a Python exception is set" for these `except -1` methods.
cdef enum:
    FAIL = -2

cdef Py_ssize_t HIGH_WATER = 65536        # buffered request body before reading pauses
cdef Py_ssize_t COPY_LIMIT = 16384        # bodies up to this are copied into the head's write
# Chunk extensions carry nothing an ASGI app can see; bytes of them per request past this
# are refused with 400, so a client cannot make the server read them without end.
cdef long long CHUNK_EXT_LIMIT = 16384

# --- wire literals -----------------------------------------------------------------------------

cdef str HTTP_10 = "1.0"
cdef str HTTP_11 = "1.1"
cdef str HTTP_2 = "2"
cdef bytes EMPTY = b""
cdef bytes SLASH = b"/"
cdef str SLASH_STR = "/"
cdef bytes HOST = b"host"
cdef str T_REQUEST = "http.request"
cdef str T_DISCONNECT = "http.disconnect"
cdef str T_START = "http.response.start"
cdef str T_BODY = "http.response.body"
cdef str T_TRAILERS = "http.response.trailers"
cdef str T_EARLY_HINT = "http.response.early_hint"
cdef str T_PATHSEND = "http.response.pathsend"
cdef str T_ZEROCOPYSEND = "http.response.zerocopysend"
cdef bytes CONTINUE_100 = b"HTTP/1.1 100 Continue\r\n\r\n"
cdef bytes ERROR_HEADERS = b"content-type: text/plain; charset=utf-8\r\ncontent-length: "
cdef const char* HTTP_NAME = "HTTP"
cdef const char* CRLF = "\r\n"
cdef const char* COLON_SP = ": "
cdef const char* LAST_CHUNK = "0\r\n\r\n"
cdef const char* CONNECTION_CLOSE = "connection: close\r\n"
cdef const char* CONNECTION_KEEP_ALIVE = "connection: keep-alive\r\n"
cdef const char* CONTENT_LENGTH = "content-length: "
cdef const char* TE_CHUNKED = "transfer-encoding: chunked\r\n"
cdef const char* LAST_CHUNK_OPEN = "0\r\n"        # the last chunk, a trailer section to follow
cdef bytes EARLY_HINTS_LINE = b"HTTP/1.1 103 Early Hints\r\n"
cdef bytes LINK = b"link"

# lengths of the C literals above and of names compared against, counted once
cdef enum:
    CRLF_LEN = 2
    COLON_SP_LEN = 2
    LAST_CHUNK_LEN = 5
    LAST_CHUNK_OPEN_LEN = 3
    CONNECTION_CLOSE_LEN = 19
    CONNECTION_KEEP_ALIVE_LEN = 24
    CONTENT_LENGTH_LEN = 16
    TE_CHUNKED_LEN = 28
    HTTP_NAME_LEN = 4               # "HTTP"
    HTTP_PREFIX_LEN = 7             # "http://"
    HTTPS_PREFIX_LEN = 8            # "https://"
    CHUNKED_LEN = 7                 # "chunked"
    CLOSE_LEN = 5                   # "close"
    CONTINUE_LEN = 12               # "100-continue"
    WEBSOCKET_LEN = 9               # "websocket"
    HOST_LEN = 4
    EXPECT_LEN = 6
    UPGRADE_LEN = 7
    TE_LEN = 2
    TRAILERS_LEN = 8                # "trailers"
    DATE_LEN = 4
    SERVER_LEN = 6
    CONNECTION_LEN = 10
    CONTENT_LENGTH_NAME_LEN = 14
    TRANSFER_ENCODING_LEN = 17

# --header-map: what becomes of request header fields whose name holds "_" (gunicorn 22's
# setting: same names, same default)
# _defaults.HEADER_MAPS lists the names in the order of the HEADER_MAP_* values
cdef dict HEADER_MAPS = {name: value for value, name in enumerate(_defaults.HEADER_MAPS)}

cdef enum:
    METHOD_COUNT = 47       # llhttp.h HTTP_ALL_METHOD_MAP numbers 0..46; others abort()
cdef list METHODS = []
cdef Py_ssize_t METHOD_LEN[METHOD_COUNT]
for _m in range(METHOD_COUNT):
    METHODS.append(llhttp_method_name(<uint8_t>_m).decode("ascii"))
    METHOD_LEN[_m] = len(METHODS[_m])


# --- byte tables ---------------------------------------------------------------------------------

# RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
#                         "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
cdef unsigned char TOKEN[256]
cdef unsigned char LOWER[256]
# RFC 3986 3.2.2: reg-name = *( unreserved / pct-encoded / sub-delims ), here without ",":
# a comma in Host is what several field lines combined into one look like (RFC 9110 5.3),
# and RFC 9110 7.2 allows exactly one Host value.
cdef unsigned char REGNAME[256]
# RFC 3986 3.2.2: IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )
cdef unsigned char IPVFUTURE[256]
cdef unsigned char HEXDIG[256]
for _i in range(256):
    _c = chr(_i)
    _alnum = _c.isascii() and _c.isalnum()
    TOKEN[_i] = 1 if _alnum or _c in "!#$%&'*+-.^_`|~" else 0
    LOWER[_i] = ord(_c.lower()) if "A" <= _c <= "Z" else _i
    REGNAME[_i] = 1 if _alnum or _c in "-._~!$&'()*+;=" else 0
    IPVFUTURE[_i] = 1 if _alnum or _c in "-._~!$&'()*+,;=:" else 0
    HEXDIG[_i] = 1 if _c in "0123456789abcdefABCDEF" else 0


cdef inline bint is_ows(char c) noexcept:
    return c == c' ' or c == c'\t'


cdef inline bint lower_equals(const char* p, Py_ssize_t n, const char* lit, Py_ssize_t litlen) noexcept:
    """p[:n], lower-cased, equals the lower-case literal."""
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
cdef list COMMON_BY_LEN = [[] for _ in range(32)]
for _n in (b"host", b"user-agent", b"accept", b"accept-encoding", b"accept-language",
           b"connection", b"content-type", b"content-length", b"cookie", b"origin",
           b"referer", b"authorization", b"cache-control", b"upgrade", b"x-forwarded-for",
           b"x-forwarded-proto", b"x-real-ip", b"transfer-encoding", b"expect",
           b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions",
           b"sec-websocket-protocol", b"pragma", b"if-none-match", b"if-modified-since"):
    COMMON_BY_LEN[len(_n)].append(HOST if _n == HOST else _n)


cdef inline bytes make_name(const char* p, Py_ssize_t n):
    """The header name as bytes (p is already lower-cased), shared when it is a common one."""
    cdef bytes cand
    if n < 32:
        for cand in <list>COMMON_BY_LEN[n]:
            if memcmp(PyBytes_AS_STRING(cand), p, n) == 0:
                return cand
    return PyBytes_FromStringAndSize(p, n)


# RFC 9110 6.5.1: fields a sender must not put in a trailer section, because the recipient
# needs them before the content (framing, routing, request modifiers, authentication,
# response control data, how to process the content); our own list, lower-case.
cdef frozenset FORBIDDEN_TRAILERS = frozenset((
    b"transfer-encoding", b"content-length", b"host", b"trailer", b"te", b"connection",
    b"keep-alive", b"upgrade", b"proxy-connection", b"content-type", b"content-encoding",
    b"content-range", b"range", b"expect", b"max-forwards", b"cache-control", b"pragma",
    b"authorization", b"proxy-authorization", b"www-authenticate", b"proxy-authenticate",
    b"set-cookie", b"cookie", b"age", b"expires", b"date", b"location", b"retry-after",
    b"vary", b"warning",
))
