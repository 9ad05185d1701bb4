# --- RequestParser: llhttp, and the checks of a request head that llhttp leaves to the server ---
#
# Bytes in, request heads out: the request-target, the fields for the scope, and what the
# connection needs to know (Expect, a websocket upgrade). The HttpProtocol that owns it gets
# the message events (begin, head complete, body, complete) from the trampolines and asks
# the parser first where a check applies.
#
# llhttp parses strictly (no lenient flag but one: the version, see below), but RFC 9110/9112
# ask more of a server than llhttp checks: one Host, a valid Host, the request-target's form, exactly one SP between the parts
# of the request line, the protocol name "HTTP", one size limit on the head as a whole,
# transfer-coding syntax, bounded chunk extensions. They are checked here, as the bytes pass,
# so a refused request never reaches the app. Each refusal sets err_status and makes llhttp
# stop (FAIL); HttpProtocol answers with that status and closes.
#
# Positions: feed_base is where the buffer of the running llhttp_execute starts and feed_pos
# its offset in the connection's byte stream, so a pointer a callback gets has the stream
# position feed_pos + (at - feed_base) (_pos). The head's size is counted from head_start,
# the method's position, so one limit covers the request line and the fields together.
# llhttp skips any run of spaces between the parts of the request line; the byte two before
# the target (and before "HTTP") must not be a space, which _byte_before reads from the
# buffer or, at its very start, from the two bytes kept from the previous one (`before`).

@cython.final
cdef class RequestParser:

    def __cinit__(self):
        buf_init(&self.head)

    def __dealloc__(self):
        buf_free(&self.head)

    def __init__(self, ServerContext ctx, HttpProtocol owner):
        # llhttp's data pointer is the owning HttpProtocol (not a reference: it owns us)
        self.ctx = ctx
        llhttp_init(&self.parser, HTTP_REQUEST, &SETTINGS)
        # RFC 9110 2.5: a request of a higher minor version of HTTP/1 is served as the highest
        # one the server implements, HTTP/1.1 (strict llhttp refuses HTTP/1.2); any version
        # other than 1.x is then refused with 505 in _on_headers_complete. llhttp_reset keeps
        # the flag.
        llhttp_set_lenient_version(&self.parser, 1)
        self.parser.data = <void*>owner

    cdef llhttp_errno_t execute(self, const char* data, Py_ssize_t n):
        """llhttp_execute over data[:n]; afterwards `consumed` says how many bytes it took
        (all of them, or up to where it paused)."""
        cdef llhttp_errno_t err
        self.feed_base = data
        self.feed_pos = self.stream_pos
        err = llhttp_execute(&self.parser, data, n)
        if err == HPE_PAUSED or err == HPE_PAUSED_UPGRADE:
            n = self.parser.error_pos - data
        elif err != HPE_OK:
            n = 0
        self.consumed = n
        self.stream_pos += n
        if n >= 2:
            self.before[0] = data[n - 2]
            self.before[1] = data[n - 1]
        elif n == 1:
            self.before[0] = self.before[1]
            self.before[1] = data[0]
        return err

    cdef int error_status(self, llhttp_errno_t err) noexcept:
        """The status a parse error answers with: what a check chose, else 505 for a version
        we do not speak, else 400."""
        if self.err_status:
            return self.err_status
        if err == HPE_INVALID_VERSION and self.parser.http_major >= 2:
            return 505
        return 400

    cdef inline long long _pos(self, const char* at) noexcept:
        return self.feed_pos + (at - self.feed_base)

    cdef inline char _byte_before(self, const char* at, int k) noexcept:
        """The stream's byte k (1 or 2) positions before `at`."""
        cdef Py_ssize_t off = at - self.feed_base
        if off >= k:
            return at[-k]
        return self.before[2 + off - k]

    cdef inline int _refuse(self, int status) noexcept:
        self.err_status = status
        return FAIL

    # the request line ----------------------------------------------------------------------

    cdef inline int _on_message_begin(self) noexcept:
        self.head.len = 0
        self.url_len = 0
        self.name_len = 0
        self.headers = []
        self.field_count = 0
        self.host_count = 0
        self.proto_len = 0
        self.chunk_ext_bytes = 0
        self.body_received = 0
        self.head_start = -1
        self.in_trailers = False
        self.expect_continue = False
        self.websocket_upgrade = False
        self.te_trailers = False
        return 0

    cdef int _on_url(self, const char* at, size_t n) noexcept:
        cdef long long end = self._pos(at + n)
        if n == 0:
            return 0
        if self.url_len == 0:
            if self._byte_before(at, 2) == c' ':
                return self._refuse(400)    # RFC 9112 3: one SP after the method
            self.head_start = self._pos(at) - 1 - METHOD_LEN[self.parser.method]
        if end - self.head_start > self.ctx.max_header_bytes:
            return self._refuse(414)        # RFC 9112 3: a target longer than we parse
        if memchr(at, c'#', n) != NULL:
            return self._refuse(400)        # RFC 9112 3.2: a target carries no fragment
        if buf_append(&self.head, at, n) < 0:
            return self._refuse(500)        # out of memory
        self.url_len += n       # only bytes that are in `head`: the access log reads them
        return 0

    cdef int _on_protocol(self, const char* at, size_t n) noexcept:
        if n == 0:
            return 0
        if self.proto_len == 0 and self._byte_before(at, 2) == c' ':
            return self._refuse(400)        # RFC 9112 3: one SP after the target
        # RFC 9112 2.3: HTTP-name = %s"HTTP", case-sensitive. llhttp also takes "RTSP" and
        # "ICE": not HTTP, so not a request line of this protocol: 400.
        if self.proto_len + n > HTTP_NAME_LEN or memcmp(at, HTTP_NAME + self.proto_len, n) != 0:
            return self._refuse(400)
        self.proto_len += n
        return 0

    # field lines (of the head, or of a trailer section) -----------------------------------

    cdef int _on_field_name(self, const char* at, size_t n) noexcept:
        self.name_len += n
        return self._on_field_bytes(at, n)

    cdef int _on_field_bytes(self, const char* at, size_t n) noexcept:
        # a field line's name and value bytes go one after the other into `head`
        if self.head_start < 0:
            self.head_start = self._pos(at)     # the first byte of a trailer section
        if self._pos(at + n) - self.head_start > self.ctx.max_header_bytes:
            return self._refuse(431)            # RFC 6585 5
        if buf_append(&self.head, at, n) < 0:
            return self._refuse(500)            # out of memory
        return 0

    cdef int _on_header_value_complete(self) except -1:
        cdef char* p = self.head.data + self.url_len
        cdef Py_ssize_t nlen = self.name_len
        cdef Py_ssize_t vlen = self.head.len - self.url_len - nlen
        cdef char* v = p + nlen
        cdef Py_ssize_t i
        cdef int status
        cdef unsigned char c, underscore = 0
        self.head.len = self.url_len        # the bytes stay readable until the next field
        self.name_len = 0
        self.field_count += 1
        if self.field_count > self.ctx.max_headers:
            return self._refuse(431)
        if self.in_trailers:
            # A trailer field (RFC 9112 7.1.2). No ASGI event carries request trailers, so
            # none reaches the app: not those RFC 9110 6.5.1 forbids (Host, Content-Length,
            # Transfer-Encoding, Authorization, ...), nor any other. They are parsed under
            # the head's limits, then dropped.
            return 0
        # RFC 9110 5.5: OWS around a field value is not part of it (llhttp drops the
        # leading OWS, the trailing is ours to drop)
        while vlen > 0 and is_ows(v[vlen - 1]):
            vlen -= 1
        for i in range(nlen):
            c = LOWER[<unsigned char>p[i]]
            p[i] = <char>c
            underscore |= c == c'_'
        if underscore and self.ctx.header_map != HEADER_MAP_DANGEROUS:
            # "X_Forwarded_For" passes a proxy that strips "X-Forwarded-For", and CGI-style
            # mappings (Django's META, WSGI environ) turn both into HTTP_X_FORWARDED_FOR
            if self.ctx.header_map == HEADER_MAP_REFUSE:
                return self._refuse(400)
            return 0
        self.headers.append((make_name(p, nlen), PyBytes_FromStringAndSize(v, vlen)))
        if nlen == HOST_LEN and memcmp(p, "host", HOST_LEN) == 0:
            # RFC 9112 3.2: 400 for more than one Host field line or an invalid value
            self.host_count += 1
            if self.host_count > 1 or not valid_authority(v, vlen):
                return self._refuse(400)
        elif nlen == TRANSFER_ENCODING_LEN and memcmp(p, "transfer-encoding", TRANSFER_ENCODING_LEN) == 0:
            status = transfer_coding_status(v, vlen)
            if status:
                return self._refuse(status)
        elif nlen == EXPECT_LEN and memcmp(p, "expect", EXPECT_LEN) == 0:
            if lower_equals(v, vlen, "100-continue", CONTINUE_LEN):
                self.expect_continue = True
        elif nlen == UPGRADE_LEN and memcmp(p, "upgrade", UPGRADE_LEN) == 0:
            if lower_contains(v, vlen, "websocket", WEBSOCKET_LEN):
                self.websocket_upgrade = True
        elif nlen == TE_LEN and p[0] == c't' and p[1] == c'e':
            # RFC 9110 10.1.4: "trailers" in TE: the client accepts a trailer section
            if lower_contains(v, vlen, "trailers", TRAILERS_LEN):
                self.te_trailers = True
        return 0

    # the end of the head ------------------------------------------------------------------

    cdef int _on_headers_complete(self) except -1:
        cdef llhttp_t* p = &self.parser
        cdef ServerContext ctx = self.ctx
        cdef int form
        if p.http_major != 1:
            return self._refuse(505)
        form = target_form(self.head.data, self.url_len, p.method)
        if form < 0:
            return self._refuse(-form)
        if p.http_minor >= 1 and self.host_count == 0:
            return self._refuse(400)    # RFC 9112 3.2; HTTP/1.0 may come without Host
        if ctx.max_body_size >= 0 and (p.flags & F_CONTENT_LENGTH) and \
                <long long>p.content_length > ctx.max_body_size:
            return self._refuse(413)
        # An upgrade we do not speak (h2c, ...) is served as plain HTTP, and so is any
        # upgrade asked over HTTP/1.0: RFC 9110 7.8, a server MUST ignore Upgrade there.
        if p.upgrade and not (self.websocket_upgrade and p.http_minor >= 1
                              and p.method == HTTP_GET and ctx.ws_upgrade is not None):
            p.upgrade = 0
        elif p.upgrade and ((p.flags & F_CHUNKED) or
                            ((p.flags & F_CONTENT_LENGTH) and p.content_length > 0)):
            # A websocket handshake carries no content: the bytes after its head are frames
            # (RFC 6455 4.1, 5), so a body would be read as frames or frames as a body
            return self._refuse(400)
        if not p.upgrade:
            self.websocket_upgrade = False
        if form == TARGET_ABSOLUTE:
            self._use_target_authority()
        # a trailer section, if one comes, is counted and limited on its own
        self.in_trailers = True
        self.head_start = -1
        self.field_count = 0
        return 0

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
            if headers[i][0] == HOST:
                headers[i] = (HOST, authority)
                return
        headers.append((HOST, authority))     # HTTP/1.0 may come without Host

    cdef dict scope_so_far(self, dict template, str root, Buf* scratch):
        """A scope of what was parsed of a head the server refused, "-" for what was not
        (for its access-log line)."""
        cdef llhttp_t* p = &self.parser
        cdef dict scope = PyDict_Copy(template)
        scope["method"] = <str>METHODS[p.method] if self.url_len > 0 else "-"
        if (p.http_major or p.http_minor) and (p.http_major != 1 or p.http_minor != 1):  # 0.0: not parsed
            scope["http_version"] = "%d.%d" % (p.http_major, p.http_minor)
        if self.url_len > 0:
            fill_target(scope, self.head.data, self.url_len, root, scratch)
        else:
            scope["path"] = "-"
            scope["raw_path"] = b"-"
        scope["headers"] = self.headers if self.headers is not None else []
        scope["state"] = {}
        return scope

    # the body -------------------------------------------------------------------------------

    cdef int _on_chunk_extension(self, size_t n) noexcept:
        self.chunk_ext_bytes += n
        if self.chunk_ext_bytes > CHUNK_EXT_LIMIT:
            return self._refuse(400)
        return 0

    cdef int _on_body(self, size_t n) except -1:
        self.body_received += n
        if self.ctx.max_body_size >= 0 and self.body_received > self.ctx.max_body_size:
            return self._refuse(413)
        return 0
