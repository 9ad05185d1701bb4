# --- RequestCycle: an HTTP/1.1 Exchange (exchange.pxi): the head writer, chunks, close ---------
#
# The ASGI rules and both state machines are Exchange's. This part holds what HTTP/1.1 puts
# on the wire: the status line and header section built in one buffer with the first body
# bytes (framing decided by response_framing, wire.pxi), chunked encoding, the 100 Continue
# owed when the app first waits for body (RFC 9110 10.1.1), keep-alive and the close that
# ends a response HTTP/1.1 cannot finish otherwise.
#
# Orthogonal to the states: peer_eof (the client half-closed), expect_continue (a 100 is owed),
# keep_alive (this response leaves the connection open).

cdef RequestCycle new_cycle(HttpProtocol proto, dict scope, int method, bint http10,
                            bint keep_alive, bint expect_continue, bint te_trailers):
    cdef RequestCycle cycle = RequestCycle.__new__(RequestCycle)
    cycle.proto = proto
    cycle.ctx = proto.ctx
    cycle.loop = proto.loop
    cycle.scope = scope
    cycle.m_protocol = 0 if http10 else 1
    cycle.m_method = METHOD_INDEX[method]
    cycle.is_head = method == HTTP_HEAD
    cycle.http10 = http10
    cycle.keep_alive = keep_alive
    cycle.expect_continue = expect_continue
    cycle.trailers_ok = te_trailers         # RFC 9110 6.5, 10.1.4
    cycle.peer_eof = proto.eof
    cycle.expected_length = -1
    if proto.ctx.access_log is not None or M != NULL:
        cycle.t0 = monotonic()      # the request's duration, for the access log and metrics
    return cycle


@cython.final
cdef class RequestCycle(Exchange):

    # request side ------------------------------------------------------------------------------

    cdef _on_body(self, const char* at, size_t n):
        cdef HttpProtocol proto = self.proto
        if self.request == REQ_DISCARD:
            return
        self._buffer(at, n)
        if self.body_len > HIGH_WATER and not proto.body_paused:
            proto.body_paused = True
            proto._update_reading()

    cdef int _body_taken(self, Py_ssize_t n) except -1:
        cdef HttpProtocol proto = self.proto
        if proto.body_paused:
            proto.body_paused = False
            proto._update_reading()
        return 0

    cdef int _before_wait(self) except -1:
        if self.peer_eof:
            return 1
        if self.expect_continue:
            # RFC 9110 10.1.1: 100 Continue only once the app asks for the body.
            self.expect_continue = False
            if self.response == RESP_NONE:
                self.proto._write(CONTINUE_100)
        return 0

    # response side ------------------------------------------------------------------------------

    cdef object _send_wait(self):
        cdef HttpProtocol proto = self.proto
        if proto.writing_paused and not self.disconnected:
            waiter = proto.drain_waiter
            if waiter is None:
                waiter = proto.drain_waiter = proto.loop.create_future()
            return waiter
        return _DONE

    cdef _send_body(self, bytes body, bint more):
        cdef HttpProtocol proto = self.proto
        cdef Py_ssize_t blen = PyBytes_GET_SIZE(body)
        cdef Buf* b = &proto.out
        cdef bint emit, chunked
        b.len = 0
        if self.response == RESP_STARTED:
            self._build_head(body, not more)      # decides the framing
        if self.expected_length >= 0 and not self.is_head and \
                self.sent_length + blen > self.expected_length:
            b.len = 0
            self.keep_alive = False
            raise RuntimeError("Response content longer than Content-Length")
        if self.response == RESP_STARTED:
            self._set_response(RESP_STREAMING)
        self.sent_length += blen
        emit = not self.is_head and self.framing != FRAMING_NONE
        chunked = emit and (self.framing == FRAMING_CHUNKED or self.framing == FRAMING_ADD_CHUNKED)
        if emit and blen:
            if chunked:
                buf_add_int(b, blen, 16)
                buf_add(b, CRLF, CRLF_LEN)
            if blen <= COPY_LIMIT:
                buf_add(b, PyBytes_AS_STRING(body), blen)
            else:
                if b.len:
                    proto._write(buf_bytes(b))
                    b.len = 0
                proto._write(body)
            if chunked:
                buf_add(b, CRLF, CRLF_LEN)
        if not more:
            self.body_ended = True
            if chunked and self.trailers:
                buf_add(b, LAST_CHUNK_OPEN, LAST_CHUNK_OPEN_LEN)    # the trailers follow
            elif chunked:
                buf_add(b, LAST_CHUNK, LAST_CHUNK_LEN)
            if b.len:
                proto._write(buf_bytes(b))
            if not self.trailers:
                self._response_complete()
        elif b.len:
            proto._write(buf_bytes(b))

    cdef _build_head(self, bytes body, bint final):
        """Write status line and headers into proto.out: the policy scans the app's fields,
        response_framing() decides, then the head is written."""
        cdef HttpProtocol proto = self.proto
        cdef Buf* b = &proto.out
        cdef bytes name, value
        cdef object headers = self.resp_headers
        cdef Framing framing
        cdef int found = self._scan_headers()
        if found & FOUND_CLOSE:
            self.keep_alive = False
        if self.trailers and found & FOUND_LENGTH:
            # RFC 9112 7.1.2: a trailer section only follows chunked content, which a
            # Content-Length excludes (RFC 9112 6.2)
            raise RuntimeError("Response trailers need chunked framing: the response has a "
                               "Content-Length header")

        framing = response_framing(self.status, self.expected_length >= 0,
                                   (found & FOUND_CHUNKED) != 0, final and not self.trailers,
                                   self.http10)
        if framing == FRAMING_INVALID:
            raise RuntimeError("Response has both Content-Length and Transfer-Encoding")
        self.framing = framing
        if self.trailers and (self.is_head or not (framing == FRAMING_CHUNKED or
                                                   framing == FRAMING_ADD_CHUNKED)):
            self.trailers = False       # no content (1xx, 204, 304, HEAD): no trailer section

        buf_add_bytes(b, <bytes>STATUS_LINES[self.status])
        buf_add_defaults(b, proto.ctx, (found & FOUND_SERVER) != 0, (found & FOUND_DATE) != 0)
        for item in headers:
            name, value = item
            buf_add_bytes(b, name)
            buf_add(b, COLON_SP, COLON_SP_LEN)
            buf_add_bytes(b, value)
            buf_add(b, CRLF, CRLF_LEN)
        if framing == FRAMING_ADD_LENGTH:
            self.expected_length = PyBytes_GET_SIZE(body)
            if self.expected_length or not self.is_head:    # HEAD of an empty body: unknown
                buf_add(b, CONTENT_LENGTH, CONTENT_LENGTH_LEN)
                buf_add_int(b, self.expected_length, 10)
                buf_add(b, CRLF, CRLF_LEN)
        elif framing == FRAMING_ADD_CHUNKED:
            buf_add(b, TE_CHUNKED, TE_CHUNKED_LEN)
        elif framing == FRAMING_CLOSE:
            self.keep_alive = False

        if not proto.keep_alive_allowed or proto.ctx.shutting_down:
            self.keep_alive = False
        elif self.expect_continue and self.request < REQ_COMPLETE:
            # RFC 9110 10.1.1: the client waits for a 100 Continue we never sent before it
            # sends a body we will not read; we close after this response, and say so
            self.keep_alive = False
        if not found & FOUND_CONNECTION:
            if not self.keep_alive:
                buf_add(b, CONNECTION_CLOSE, CONNECTION_CLOSE_LEN)
            elif self.http10:
                buf_add(b, CONNECTION_KEEP_ALIVE, CONNECTION_KEEP_ALIVE_LEN)
        buf_add(b, CRLF, CRLF_LEN)

    cdef _send_trailers(self):
        """RFC 9112 7.1.2: the trailer section after the last chunk, then the blank line."""
        cdef HttpProtocol proto = self.proto
        cdef Buf* b = &proto.out
        cdef bytes name, value
        b.len = 0
        for name, value in self.trailer_fields:
            buf_add_bytes(b, name)
            buf_add(b, COLON_SP, COLON_SP_LEN)
            buf_add_bytes(b, value)
            buf_add(b, CRLF, CRLF_LEN)
        buf_add(b, CRLF, CRLF_LEN)
        proto._write(buf_bytes(b))
        self._response_complete()

    cdef _send_early_hint(self, list links):
        """RFC 8297: 103 Early Hints with the links as Link fields. Not to an HTTP/1.0 client
        (RFC 9110 15.2: a server must not send it a 1xx)."""
        cdef HttpProtocol proto = self.proto
        cdef Buf* b = &proto.out
        if self.http10 or proto.state >= CONN_CLOSING:
            return
        b.len = 0
        buf_add_bytes(b, EARLY_HINTS_LINE)
        for link in links:
            buf_add_bytes(b, LINK)
            buf_add(b, COLON_SP, COLON_SP_LEN)
            buf_add_bytes(b, link)
            buf_add(b, CRLF, CRLF_LEN)
        buf_add(b, CRLF, CRLF_LEN)
        proto._write(buf_bytes(b))

    cdef _response_complete(self):
        cdef HttpProtocol proto = self.proto
        if self.expected_length >= 0 and not self.is_head and self.framing != FRAMING_NONE and \
                self.sent_length < self.expected_length:
            # Fewer bytes than declared: the client would wait for the rest. Close.
            self._set_response(RESP_DONE)
            self._wake()
            self.keep_alive = False
            proto._close()
            raise RuntimeError("Response content shorter than Content-Length")
        self._response_done()
        if not self.keep_alive:
            proto._close()
            return
        if self.request >= REQ_COMPLETE:
            proto._cycle_done(self)
            return
        # The app answered without reading the whole body: read and drop the rest so the
        # connection can carry the next request.
        self._set_request(REQ_DISCARD)
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

    # the server's own answers and aborts ----------------------------------------------------------

    cdef _send_error(self, int status):
        self.proto._send_error(status)

    cdef _abort(self, int why):
        self.proto._close()
        self._connection_lost()

    cdef bint _client_left(self) except -1:
        if not self.peer_eof:
            return 0
        # The client left (it half-closed, receive() said http.disconnect) and the app gave up
        # on it: no error, as uvicorn, and nothing more to answer.
        self.proto._close()
        self._connection_lost()
        return 1
