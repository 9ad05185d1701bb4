# --- the request-target: its form, and path, raw_path and query_string for the scope ------------

cdef extern from "arpa/inet.h":
    int inet_pton(int af, const char* src, void* dst) nogil

cdef extern from "sys/socket.h":
    int AF_INET6

# an IPv6 address in text, with room for the NUL (INET6_ADDRSTRLEN)
cdef enum:
    IPV6_TEXT_MAX = 46


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
        while i < n:
            if REGNAME[<unsigned char>v[i]]:
                i += 1
            elif v[i] == c'%' and i + 2 < n and HEXDIG[<unsigned char>v[i + 1]] \
                    and HEXDIG[<unsigned char>v[i + 2]]:
                i += 3
            else:
                break
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


cdef int target_form(const char* u, Py_ssize_t n, int method) noexcept:
    """Which form a request-target has (RFC 9112 3.2): TARGET_ORIGIN, TARGET_ABSOLUTE, or
    the negated status that refuses it. A "#" never gets here (the parser refuses it)."""
    if method == HTTP_CONNECT:
        # authority-form serves CONNECT only (RFC 9112 3.2.3), and a tunnel is nothing an
        # ASGI app can serve. 501, "not capable of supporting it for any resource" (RFC
        # 9110 15.6.2), rather than 405, which needs an Allow list the server cannot know.
        return -501
    if n > 0 and u[0] == c'/':
        return TARGET_ORIGIN
    if n == 1 and u[0] == c'*':
        # RFC 9112 3.2.4: asterisk-form is for a server-wide OPTIONS only
        return TARGET_ORIGIN if method == HTTP_OPTIONS else -400
    cdef Py_ssize_t a = authority_start(u, n)
    if a < 0 or not valid_authority(u + a, authority_end(u, n, a) - a):
        return -400
    return TARGET_ABSOLUTE


cdef inline int hexval(char c) noexcept:
    if c'0' <= c <= c'9':
        return c - c'0'
    if c'a' <= c <= c'f':
        return c - c'a' + 10
    if c'A' <= c <= c'F':
        return c - c'A' + 10
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
        if c == c'%' and i + 2 < n:
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


cdef fill_target(dict scope, const char* u, Py_ssize_t n, str root, Buf* scratch):
    """Set the scope's path, raw_path and query_string from the request-target u[:n]."""
    cdef Py_ssize_t i, path_start = 0, path_end, q_start = -1, q_end = 0
    cdef bint has_pct = False
    cdef bytes raw_path
    cdef str path
    if n > 0 and u[0] != c'/':
        # absolute-form (RFC 9112 3.2.2): the path follows "scheme://authority"
        path_start = authority_start(u, n)
        path_start = authority_end(u, n, path_start) if path_start >= 0 else 0
    i = path_start
    while i < n and u[i] != c'?' and u[i] != c'#':
        if u[i] == c'%':
            has_pct = True
        i += 1
    path_end = i
    if i < n and u[i] == c'?':
        q_start = i + 1
        i += 1
        while i < n and u[i] != c'#':
            i += 1
        q_end = i
    if path_end - path_start == 1 and u[path_start] == c'/':
        raw_path = SLASH
        path = SLASH_STR
    elif path_end == path_start:
        raw_path = SLASH        # absolute-form without a path (RFC 9112 3.2.2: it is "/")
        path = SLASH_STR
    else:
        raw_path = PyBytes_FromStringAndSize(u + path_start, path_end - path_start)
        if has_pct:
            path = decode_path(u + path_start, path_end - path_start, scratch)
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
