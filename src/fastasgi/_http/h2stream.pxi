# --- H2Stream: an HTTP/2 Exchange (exchange.pxi): the head, DATA, RST_STREAM, trailers -----------
#
# The ASGI rules and both state machines are Exchange's; this part maps them onto one stream.
# `disconnected`: the stream is reset or the connection is gone.
#
# A response that completes before its request body (RFC 9113 8.1): the stream stays
# half-closed (local) and the request goes to DISCARD. nghttp2 keeps applying every check to
# the client's later frames (content-length against the DATA, padding, WINDOW_UPDATE rules,
# flow-control windows, stream states), so their errors do not depend on which read they
# arrived in; unread DATA is dropped and its window given back. The upload stays bounded: past
# one stream window of dropped bytes, or after --timeout-request-body (else the keep-alive
# timeout) without its end, RST_STREAM(NO_ERROR) asks the client to stop (RFC 9113 8.1).
#
# The head becomes the scope as ASGI maps HTTP/2: :method, :scheme, :path as for HTTP/1.1;
# :authority becomes a `host` header unless the request has one; split cookie fields are
# joined with "; " (RFC 9113 8.2.3). nghttp2 has checked the rest of 8.2-8.3 (lowercase names,
# no connection-specific fields, pseudo-headers, content-length against the DATA) and reset
# violating streams with PROTOCOL_ERROR before this layer.
#
# The response: the head waits for the first body message (as on HTTP/1.1) so HEADERS and
# the first DATA go out together; names lowercase, no connection-specific fields (RFC 9113
# 8.2.2). http.response.trailers (gRPC): with "trailers": True in the start message the
# trailers, not the last body message, end the stream.

cdef tuple H2_STATUS = tuple(b"%d" % i for i in range(600))
cdef dict H2_METHODS = {m.encode("ascii"): m for m in METHODS if m}
cdef dict H2_METHOD_INDEX = {m.encode("ascii"): i for i, m in enumerate(METRIC_METHODS)}
cdef bytes H2_CONTENT_TYPE_TEXT = b"text/plain; charset=utf-8"


cdef H2Stream new_h2_stream(H2Protocol conn, int32_t stream_id):
    cdef H2Stream stream = H2Stream.__new__(H2Stream)
    stream.conn = conn
    stream.ctx = conn.ctx
    stream.loop = conn.loop
    stream.stream_id = stream_id
    stream.started = conn.ctx.now
    stream.headers = []
    stream.expected_length = -1
    stream.trailers_ok = True
    stream.m_protocol = 2
    return stream


@cython.final
cdef class H2Stream(Exchange):

    # the request head ----------------------------------------------------------------------

    cdef int _on_header(self, const char* name, size_t nl, const char* value, size_t vl) except -1:
        cdef ServerContext ctx = self.ctx
        cdef bytes v
        cdef long long declared
        if self.err_status:
            return 0
        # RFC 9113 6.5.2: a field's size is its name and value plus 32
        self.head_bytes += nl + vl + 32
        if self.head_bytes > <Py_ssize_t>ctx.h2_settings[4] or len(self.headers) >= ctx.max_headers:
            self.err_status = 431
            return 0
        v = PyBytes_FromStringAndSize(value, vl)
        if nl and name[0] == c':':
            if nl == 7 and memcmp(name, ":method", 7) == 0:
                self.method = v
            elif nl == 5 and memcmp(name, ":path", 5) == 0:
                self.path = v
            elif nl == 7 and memcmp(name, ":scheme", 7) == 0:
                self.scheme = v
            elif nl == 10 and memcmp(name, ":authority", 10) == 0:
                # RFC 9113 8.3.1: the authority of the target URI, no userinfo; the same
                # syntax check as an HTTP/1.1 Host field (400)
                if not valid_authority(value, vl):
                    self.err_status = 400
                self.authority = v
            return 0
        if memchr(name, c'_', nl) != NULL and ctx.header_map != HEADER_MAP_DANGEROUS:
            if ctx.header_map == HEADER_MAP_REFUSE:
                self.err_status = 400
            return 0
        if nl == 6 and memcmp(name, "cookie", 6) == 0:
            if self.cookies is None:
                self.cookies = []
            self.cookies.append(v)
            return 0
        if nl == 4 and memcmp(name, "host", 4) == 0:
            # RFC 9113 8.3.1: Host and :authority must name the same; the field is then the
            # one the app sees (no second one from :authority)
            if (self.authority and v != self.authority) or not valid_authority(value, vl):
                self.err_status = 400
            self.authority = EMPTY
        elif nl == 14 and memcmp(name, "content-length", 14) == 0 and ctx.max_body_size >= 0:
            # nghttp2 has checked the value's syntax and will check it against the DATA;
            # too many digits for a long long is past any limit
            declared = parse_length(value, vl)
            if declared < 0 or declared > ctx.max_body_size:
                self.err_status = 413
        self.headers.append((PyBytes_FromStringAndSize(name, nl), v))
        return 0

    cdef _head_complete(self):
        cdef H2Protocol conn = self.conn
        cdef ServerContext ctx = conn.ctx
        cdef dict scope = PyDict_Copy(conn.scope_template)
        cdef list headers = self.headers
        cdef object method
        self.started = self.body_activity = ctx.now
        if ctx.access_log is not None or M != NULL:
            self.t0 = monotonic()
        if self.authority:
            headers.insert(0, (HOST, self.authority))
        if self.cookies is not None:
            headers.append((b"cookie", b"; ".join(self.cookies)))
            self.cookies = None
        method = "GET" if self.method == b"GET" else H2_METHODS.get(self.method)
        if method is None:
            method = (self.method or EMPTY).decode("latin-1")
        if M != NULL:
            self.m_method = H2_METHOD_INDEX.get(self.method, M_METHODS - 1)
        scope["method"] = method
        self.is_head = method == "HEAD"
        if self.scheme == b"https" or self.scheme == b"http":
            scope["scheme"] = "https" if self.scheme == b"https" else "http"
        scope["headers"] = headers
        scope["state"] = PyDict_Copy(ctx.state)
        path = self.path if self.path is not None else SLASH
        fill_target(scope, PyBytes_AS_STRING(path), PyBytes_GET_SIZE(path), ctx.root_path,
                    &conn.scratch)
        self.scope = scope
        if method == "CONNECT" and not self.err_status:
            self.err_status = 501       # as on HTTP/1.1: ASGI cannot tunnel

    # the request body ----------------------------------------------------------------------

    cdef _on_body(self, const char* data, size_t n):
        cdef H2Protocol conn = self.conn
        cdef ServerContext ctx = self.ctx
        self.body_received += n
        self.body_activity = ctx.now
        if self.request == REQ_DISCARD or self.disconnected or self.app_state == APP_DONE:
            # nobody will read it: drop it and give its window back, within the bound
            nghttp2.nghttp2_session_consume(conn.session, self.stream_id, n)
            self.discarded += n
            if self.request == REQ_DISCARD and self.discarded > <long long>ctx.h2_settings[1]:
                self._stop_upload()
            return
        if ctx.max_body_size >= 0 and self.body_received > ctx.max_body_size:
            nghttp2.nghttp2_session_consume(conn.session, self.stream_id, n)
            self._send_error(413)
            return
        self._buffer(data, n)

    cdef _discard(self):
        """The response is complete and the request is not (RFC 9113 8.1): the stream stays
        half-closed (local), the request body is dropped as it comes (see the top)."""
        self._set_request(REQ_DISCARD)
        self.discard_since = self.ctx.now
        if self.body_len:
            nghttp2.nghttp2_session_consume(self.conn.session, self.stream_id, self.body_len)
            self.body = None
            self.body_len = 0

    cdef _stop_upload(self):
        """RFC 9113 8.1: RST_STREAM(NO_ERROR) after a complete response tells the client to
        stop sending a request body nobody reads."""
        nghttp2.nghttp2_submit_rst_stream(self.conn.session, nghttp2.NGHTTP2_FLAG_NONE,
                                          self.stream_id, nghttp2.NGHTTP2_NO_ERROR)
        self.conn._flush()

    cdef _closed(self, unsigned int error_code):
        """nghttp2 closed the stream: both sides ended, or a reset either way."""
        cdef H2Protocol conn = self.conn
        if self.body_len:
            # unread body: give its share of the connection window back
            nghttp2.nghttp2_session_consume_connection(conn.session, self.body_len)
            self.body = None
            self.body_len = 0
        if self.response != RESP_DONE or error_code != nghttp2.NGHTTP2_NO_ERROR:
            self.disconnected = True
        self.out = None
        self._wake()
        waiter = self.send_waiter
        self.send_waiter = None
        waiters_wake(waiter)

    cdef int _body_taken(self, Py_ssize_t n) except -1:
        # the app has it: now the client may send that much more (WINDOW_UPDATE)
        nghttp2.nghttp2_session_consume(self.conn.session, self.stream_id, n)
        self.conn._flush()
        return 0

    # the response --------------------------------------------------------------------------

    cdef object _send_wait(self):
        if (self.out_len > HIGH_WATER or self.conn.writing_paused) and not self.disconnected \
                and self.response != RESP_DONE:
            waiter = self.send_waiter
            if waiter is None:
                waiter = self.send_waiter = self.loop.create_future()
            return waiter
        return _DONE

    cdef _send_trailers(self):
        cdef H2Protocol conn = self.conn
        if self.out is None:        # the body is all out: the trailers end the stream
            _submit_fields(conn.session, self.stream_id, self.trailer_fields, FIELDS_TRAILER)
        self._response_done()
        conn._flush()

    cdef _send_early_hint(self, list links):
        """RFC 9113 8.1: an informational HEADERS (:status 103) before the response's."""
        cdef list fields = [(b":status", H2_STATUS[103])]
        for link in links:
            fields.append((LINK, link))
        _submit_fields(self.conn.session, self.stream_id, fields, FIELDS_INFORMATIONAL)
        self.conn._flush()

    cdef _send_body(self, bytes body, bint more):
        cdef Py_ssize_t blen = PyBytes_GET_SIZE(body)
        if self.response == RESP_STARTED:
            self._submit_head(blen > 0 or more or self.trailers, -1 if more else blen)
        if self.expected_length >= 0 and not self.is_head and \
                self.sent_length + blen > self.expected_length:
            self._reset(nghttp2.NGHTTP2_INTERNAL_ERROR)
            raise RuntimeError("Response content longer than Content-Length")
        self.sent_length += blen
        if self.out is not None and blen and not self.is_head:
            self.out.append(body)
            self.out_len += blen
        if not more:
            self.body_ended = True
            if self.expected_length >= 0 and not self.is_head and self.out is not None and \
                    self.sent_length < self.expected_length:
                self._reset(nghttp2.NGHTTP2_INTERNAL_ERROR)
                raise RuntimeError("Response content shorter than Content-Length")
        if self.deferred and (self.out_len or self.body_ended):
            self.deferred = False
            nghttp2.nghttp2_session_resume_data(self.conn.session, self.stream_id)
        if not more and not self.trailers:
            self._response_done()
        self.conn._flush()

    cdef _submit_head(self, bint has_body, long long whole):
        """HEADERS: :status, the app's fields (lowercase, no connection-specific ones), the
        server's own; with a data source unless there is no body."""
        cdef H2Protocol conn = self.conn
        cdef list fields = [(b":status", H2_STATUS[self.status])]
        cdef nghttp2.nghttp2_data_provider provider
        cdef Py_ssize_t nl
        cdef int found = self._scan_headers()
        for item in self.resp_headers:
            name, value = item
            nl = PyBytes_GET_SIZE(name)
            if has_upper(PyBytes_AS_STRING(name), nl):
                name = name.lower()
                item = (name, value)
            if is_hop_field(PyBytes_AS_STRING(name), nl):
                continue        # RFC 9113 8.2.2: no connection-specific fields
            fields.append(item)
        self._add_own_fields(fields, found)
        no_body = self.status < 200 or self.status == 204 or self.status == 304
        if no_body or self.is_head:
            self.trailers = False
        if not no_body and not found & FOUND_LENGTH and whole >= 0 and not self.trailers and \
                (whole or not self.is_head):
            # the whole body came in one message: say its length (a HEAD's empty body says
            # nothing about GET's)
            fields.append((b"content-length", decimal(&conn.scratch, whole)))
        no_body = no_body or self.is_head
        self._set_response(RESP_STREAMING)
        if no_body or not (has_body or self.trailers):
            self.out = None         # HEADERS ends the stream
            _submit_fields(conn.session, self.stream_id, fields, FIELDS_RESPONSE, NULL)
            return
        self.out = []
        provider.source.ptr = <void*>self
        provider.read_callback = h2_read_body
        _submit_fields(conn.session, self.stream_id, fields, FIELDS_RESPONSE, &provider)

    cdef _add_own_fields(self, list fields, int found):
        """The server's own response fields, as HTTP/1.1's buf_add_defaults writes them:
        Server and Date unless the app sent its own (FOUND_* flags), then the --header ones."""
        cdef ServerContext ctx = self.ctx
        if ctx.server_field is not None and not found & FOUND_SERVER:
            fields.append(ctx.server_field)
        if ctx.date_header and not found & FOUND_DATE:
            fields.append(h2_date_field())
        fields.extend(self.conn.default_nv)

    cdef Py_ssize_t _read_out(self, char* buf, size_t length, unsigned int* flags) except -1:
        """nghttp2 asks for up to `length` body bytes (the client's window allowing)."""
        cdef Py_ssize_t n = 0, take, size
        cdef list out = self.out
        cdef bytes chunk
        if out is None:
            flags[0] |= nghttp2.NGHTTP2_DATA_FLAG_EOF
            return 0
        while out and n < <Py_ssize_t>length:
            chunk = <bytes>out[0]
            size = PyBytes_GET_SIZE(chunk) - self.out_off
            take = min(size, <Py_ssize_t>length - n)
            memcpy(buf + n, PyBytes_AS_STRING(chunk) + self.out_off, take)
            n += take
            if take == size:
                out.pop(0)
                self.out_off = 0
            else:
                self.out_off += take
        self.out_len -= n
        if self.out_len == 0 and self.body_ended:
            flags[0] |= nghttp2.NGHTTP2_DATA_FLAG_EOF
            self.out = None
            if self.trailers:
                flags[0] |= nghttp2.NGHTTP2_DATA_FLAG_NO_END_STREAM
                if self.response == RESP_DONE:      # the trailers are all here already
                    _submit_fields(self.conn.session, self.stream_id, self.trailer_fields, FIELDS_TRAILER)
        elif n == 0:
            self.deferred = True
            return nghttp2.NGHTTP2_ERR_DEFERRED
        if self.send_waiter is not None and self.out_len <= HIGH_WATER and \
                not self.conn.writing_paused:
            waiter = self.send_waiter
            self.send_waiter = None
            waiters_wake(waiter)
        return n

    # the server's own answers and aborts ----------------------------------------------------------

    cdef _send_error(self, int status):
        """Answer in the app's place (bad input, limits, timeouts, an app failed before its
        head): the same fields as HTTP/1.1's error responses; a response already begun can
        only be reset."""
        cdef bytes body = (<str>REASONS[status]).encode("latin-1")
        cdef nghttp2.nghttp2_data_provider provider
        cdef list fields
        if self.response >= RESP_STREAMING:
            self._reset(nghttp2.NGHTTP2_INTERNAL_ERROR)
            return
        if M != NULL:
            M.refused[status - 100] += 1
        self.status = status
        if self.response == RESP_NONE:
            self._set_response(RESP_STARTED)
        self._set_response(RESP_DONE)
        self.sent_length = 0 if self.is_head else PyBytes_GET_SIZE(body)
        fields = [(b":status", H2_STATUS[status]), (b"content-type", H2_CONTENT_TYPE_TEXT),
                  (b"content-length", decimal(&self.conn.scratch, PyBytes_GET_SIZE(body)))]
        self._add_own_fields(fields, 0)
        if self.is_head:
            self.out = None
            _submit_fields(self.conn.session, self.stream_id, fields, FIELDS_RESPONSE, NULL)
        else:
            self.out = [body]
            self.out_len = PyBytes_GET_SIZE(body)
            self.body_ended = True
            provider.source.ptr = <void*>self
            provider.read_callback = h2_read_body
            _submit_fields(self.conn.session, self.stream_id, fields, FIELDS_RESPONSE, &provider)
        self._account(self.sent_length)
        self.disconnected = True        # the app's further sends raise, receive() says so
        self._wake()
        self.conn._flush()

    cdef _reset(self, unsigned int code):
        """RST_STREAM: the response cannot be completed (what was sent stays sent)."""
        nghttp2.nghttp2_submit_rst_stream(self.conn.session, nghttp2.NGHTTP2_FLAG_NONE,
                                          self.stream_id, code)
        self.disconnected = True
        self.out = None
        self._wake()
        self.conn._flush()

    cdef _abort(self, int why):
        self._reset(nghttp2.NGHTTP2_CANCEL if why == ABORT_TIMEOUT else nghttp2.NGHTTP2_INTERNAL_ERROR)
