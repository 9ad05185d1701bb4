# --- what HTTP and WebSocket share on the wire -------------------------------------------------
# Status lines and phrases, the server's own error responses, header validation, the shared
# Date line, the transfer-coding check and the response framing decision. websocket.py uses
# the Python-visible ones, so each exists once.


class ClientDisconnected(OSError):
    """Raised by send() once the client has gone away (ASGI spec 2.4), for HTTP and
    WebSocket connections alike."""


# --- status lines and phrases

cdef list STATUS_LINES = []
cdef list REASONS = []
for _code in range(600):
    try:
        _phrase = http.HTTPStatus(_code).phrase
    except ValueError:
        _phrase = ""
    REASONS.append(_phrase)
    STATUS_LINES.append(("HTTP/1.1 %d %s\r\n" % (_code, _phrase)).encode("latin-1"))


cpdef bytes status_line(int status):
    """b"HTTP/1.1 404 Not Found\\r\\n"; the phrase is empty for codes RFC 9110 does not name."""
    if not 100 <= status <= 599:
        raise ValueError("status %d is not 100-599" % status)
    return <bytes>STATUS_LINES[status]


cpdef str reason_phrase(int status):
    """RFC 9110 15's reason phrase ("Not Found"), or "" for a code it does not name."""
    return <str>REASONS[status] if 0 <= status < 600 else ""


# --- the shared Date header (RFC 9110 6.6.1), refreshed once a second by ServerContext.tick()

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


# --- header validation

cpdef bint is_token(bytes value):
    """RFC 9110 5.6.2: one or more tchar."""
    cdef const char* p = PyBytes_AS_STRING(value)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(value)
    cdef Py_ssize_t i
    if n == 0:
        return False
    for i in range(n):
        if not TOKEN[<unsigned char>p[i]]:
            return False
    return True


cpdef int check_header(bytes name, bytes value) except -1:
    """Response header validation: RFC 9110 5.1 names are tokens; 5.5 values may not hold
    CR, LF or NUL (which would split the response)."""
    cdef const char* p = PyBytes_AS_STRING(value)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(value)
    cdef Py_ssize_t i
    cdef char c
    if not is_token(name):
        raise RuntimeError("Invalid header name %r" % (name,))
    for i in range(n):
        c = p[i]
        if c == c'\r' or c == c'\n' or c == c'\0':
            raise RuntimeError("Invalid header value %r for %r" % (value, name))
    return 0


# --- Transfer-Encoding of a request

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


# --- the response framing decision (RFC 9112 6.3 read from the sender's side)

cpdef Framing response_framing(int status, bint has_length, bint app_chunked, bint final,
                               bint http10) noexcept:
    """How a response body is delimited, decided from the head and whether the first body
    message is the last. Pure: the head writer applies the answer."""
    # RFC 9112 6.3 (1): 1xx, 204 and 304 responses never carry a body
    if status < 200 or status == 204 or status == 304:
        return FRAMING_NONE
    if has_length:
        # RFC 9112 6.2: a sender MUST NOT send Content-Length with Transfer-Encoding
        return FRAMING_INVALID if app_chunked else FRAMING_LENGTH
    if app_chunked:
        return FRAMING_CHUNKED
    if final:
        return FRAMING_ADD_LENGTH         # the whole body is at hand: say its length
    if http10:
        return FRAMING_CLOSE              # RFC 9112 6.3 (8): the close ends the body
    return FRAMING_ADD_CHUNKED            # RFC 9112 7: streamed to an HTTP/1.1 client


# --- the head's prefix and the server's own error responses

cdef inline int buf_add_defaults(Buf* b, ServerContext ctx, bint has_server, bint has_date) except -1:
    """Server and Date unless the app sent its own, then the --header extras: what every
    response of the server starts its header section with."""
    if not (has_server or has_date):
        return buf_add_bytes(b, ctx.default_head)     # the three, prebuilt by the tick
    if not has_server:
        buf_add_bytes(b, ctx.server_line)
    if ctx.date_header and not has_date:
        buf_add_bytes(b, date_line)
    buf_add_bytes(b, ctx.extra_lines)
    return 0


def default_lines(ServerContext ctx, bint has_server=False, bint has_date=False):
    """The header lines buf_add_defaults writes, as bytes (for websocket.py)."""
    cdef Buf b
    buf_init(&b)
    try:
        buf_add_defaults(&b, ctx, has_server, has_date)
        return buf_bytes(&b)
    finally:
        buf_free(&b)


cdef int buf_add_error(Buf* b, ServerContext ctx, int status, bytes body, bytes extra,
                       bint head=False) except -1:
    """A response the server makes itself: a text/plain body (the reason phrase unless
    given), Content-Length, and Connection: close (the connection ends after it). To a HEAD
    request the head alone (RFC 9110 9.3.2: no content; 8.6: the length GET would have)."""
    if body is None:
        body = (<str>REASONS[status]).encode("latin-1")
    buf_add_bytes(b, <bytes>STATUS_LINES[status])
    buf_add_defaults(b, ctx, False, False)
    buf_add_bytes(b, extra)
    buf_add_bytes(b, ERROR_HEADERS)
    buf_add_int(b, PyBytes_GET_SIZE(body), 10)
    buf_add(b, CRLF, CRLF_LEN)
    buf_add(b, CONNECTION_CLOSE, CONNECTION_CLOSE_LEN)
    buf_add(b, CRLF, CRLF_LEN)
    if not head:
        buf_add_bytes(b, body)
    return 0


def error_response(ServerContext ctx, int status, bytes body=None, bytes extra=b""):
    """The bytes of a server-made response (for websocket.py); see buf_add_error."""
    cdef Buf b
    status_line(status)     # range check
    buf_init(&b)
    try:
        buf_add_error(&b, ctx, status, body, extra)
        return buf_bytes(&b)
    finally:
        buf_free(&b)
