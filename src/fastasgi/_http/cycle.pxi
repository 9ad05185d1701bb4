# --- RequestCycle: one request and its response: receive(), send(), the head writer --------------
#
# The response (RespState), changed only through _set_response:
#
#   NONE       the app has sent nothing
#   STARTED    http.response.start arrived; the head is held until the first body message so
#              that status line, headers and body go out in one write
#   STREAMING  the head is on the wire (and maybe some body); the rest is to come
#   DONE       the last body message is written, or the server answered in the app's place
#              (an error response; then nothing of the app's reaches the wire)
#
#   NONE -> STARTED -> STREAMING -> DONE: STREAMING as the head is written, DONE with the
#   last body message (both within one send() when the first body message is the last);
#   NONE -> DONE and STARTED -> DONE: the server's own response instead of the app's
#
# The request message as the app reads it (ReqState), changed only through _set_request:
#
#   BODY       more body may come
#   DISCARD    more body may come, but the response is done: it is read and dropped so the
#              connection can carry the next request
#   COMPLETE   the whole message has arrived (its end may still be buffered for the app)
#   DELIVERED  the app has had the final http.request message (more_body False)
#
#   BODY -> DISCARD -> COMPLETE;  BODY -> COMPLETE -> DELIVERED
#
# Orthogonal: disconnected (the connection is gone, receive() says http.disconnect and send()
# raises ClientDisconnected), peer_eof (the client half-closed), expect_continue (a 100 is
# owed when the app first waits for body), keep_alive (this response leaves the connection
# open), and the app coroutine's own AppState in driver.pxi.

cdef bint RESP_NEXT[<int>RESP_STATES][<int>RESP_STATES]
cdef bint REQ_NEXT[<int>REQ_STATES][<int>REQ_STATES]
cdef tuple RESP_NAMES = ("NONE", "STARTED", "STREAMING", "DONE")
cdef tuple REQ_NAMES = ("BODY", "DISCARD", "COMPLETE", "DELIVERED")
for _a, _bs in {RESP_NONE: (RESP_STARTED, RESP_DONE), RESP_STARTED: (RESP_STREAMING, RESP_DONE),
                RESP_STREAMING: (RESP_DONE,)}.items():
    for _b in _bs:
        RESP_NEXT[_a][_b] = True
for _a, _bs in {REQ_BODY: (REQ_DISCARD, REQ_COMPLETE), REQ_DISCARD: (REQ_COMPLETE,),
                REQ_COMPLETE: (REQ_DELIVERED,)}.items():
    for _b in _bs:
        REQ_NEXT[_a][_b] = True


cdef RequestCycle new_cycle(HttpProtocol proto, dict scope, int method, bint http10,
                            bint keep_alive, bint expect_continue):
    cdef RequestCycle cycle = RequestCycle.__new__(RequestCycle)
    cycle.proto = proto
    cycle.ctx = proto.ctx
    cycle.loop = proto.loop
    cycle.scope = scope
    cycle.method = method
    cycle.is_head = method == HTTP_HEAD
    cycle.http10 = http10
    cycle.keep_alive = keep_alive
    cycle.expect_continue = expect_continue
    cycle.peer_eof = proto.eof
    cycle.expected_length = -1
    if proto.ctx.access_log is not None or M != NULL:
        cycle.t0 = monotonic()      # the request's duration, for the access log and metrics
    return cycle


@cython.final
@cython.freelist(8)
cdef class RequestCycle:

    cdef inline int _set_response(self, RespState new) except -1:
        if FASTASGI_DEBUG and not RESP_NEXT[<int>self.response][<int>new]:
            raise AssertionError("RequestCycle response: illegal transition %s -> %s"
                                 % (RESP_NAMES[<int>self.response], RESP_NAMES[<int>new]))
        self.response = new
        return 0

    cdef inline int _set_request(self, ReqState new) except -1:
        if FASTASGI_DEBUG and not REQ_NEXT[<int>self.request][<int>new]:
            raise AssertionError("RequestCycle request: illegal transition %s -> %s"
                                 % (REQ_NAMES[<int>self.request], REQ_NAMES[<int>new]))
        self.request = new
        return 0

    # request side ------------------------------------------------------------------------------

    cdef _on_body(self, const char* at, size_t n):
        cdef HttpProtocol proto = self.proto
        cdef bytes chunk
        if self.request == REQ_DISCARD:
            return
        chunk = PyBytes_FromStringAndSize(at, n)
        if self.body is None:
            self.body = chunk
        elif type(self.body) is bytes:
            self.body = [self.body, chunk]
        else:
            (<list>self.body).append(chunk)
        self.body_len += n
        if self.body_len > HIGH_WATER and not proto.body_paused:
            proto.body_paused = True
            proto._update_reading()
        self._wake()

    cdef _message_complete(self):
        self._set_request(REQ_COMPLETE)
        self._wake()

    cdef _connection_lost(self):
        self.disconnected = True
        self._wake()

    cdef inline _wake(self):
        cdef object waiters = self.receive_waiter
        if waiters is not None:
            self.receive_waiter = None
            waiters_wake(waiters)

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
        cdef bint last
        while True:
            if self.disconnected or self.response == RESP_DONE:
                return {"type": T_DISCONNECT}
            if self.body is not None:
                last = self.request == REQ_COMPLETE
                if last:
                    self._set_request(REQ_DELIVERED)
                return {"type": T_REQUEST, "body": self._take_body(), "more_body": not last}
            if self.request == REQ_COMPLETE:
                self._set_request(REQ_DELIVERED)
                return {"type": T_REQUEST, "body": EMPTY, "more_body": False}
            if self.peer_eof:
                return {"type": T_DISCONNECT}
            # Nothing more to hand out: wait for more body, the response or a disconnect.
            proto = self.proto
            if self.expect_continue:
                # RFC 9110 10.1.1: 100 Continue only once the app asks for the body.
                self.expect_continue = False
                if self.response == RESP_NONE:
                    proto._write(CONTINUE_100)
            waiter = proto.loop.create_future()
            self.receive_waiter = waiter_add(self.receive_waiter, waiter)
            try:
                await waiter
            except BaseException:
                # cancelled: another receive() may be waiting, and stays so
                self.receive_waiter = waiter_remove(self.receive_waiter, waiter)
                raise

    # response side ------------------------------------------------------------------------------

    def send(self, message):
        """ASGI send. Does its work right away and returns an awaitable: the shared,
        already-complete _DONE when nothing has to wait (no coroutine object, no loop
        round-trip), or the connection's drain future while the transport is paused."""
        cdef HttpProtocol proto = self.proto
        cdef str mtype = message["type"]
        cdef object body
        if self.disconnected:
            raise ClientDisconnected("client disconnected")
        if mtype == T_BODY:
            if self.response == RESP_NONE:
                raise RuntimeError(
                    "Unexpected ASGI message 'http.response.body' sent, before "
                    "'http.response.start'.")
            if self.response == RESP_DONE:
                raise RuntimeError(
                    "Unexpected ASGI message 'http.response.body' sent, after response "
                    "already completed.")
            body = message.get("body", EMPTY)
            if type(body) is not bytes:
                body = bytes(body)
            self._send_body(<bytes>body, message.get("more_body", False))
            if proto.writing_paused and not self.disconnected:
                waiter = proto.drain_waiter
                if waiter is None:
                    waiter = proto.drain_waiter = proto.loop.create_future()
                return waiter
            return _DONE
        if mtype == T_START:
            if self.response != RESP_NONE:
                raise RuntimeError(
                    "Unexpected ASGI message 'http.response.start' sent, after response "
                    "already started.")
            status = message["status"]
            if type(status) is not int or not (100 <= <int>status <= 599):
                raise RuntimeError("Invalid HTTP status code %r in response." % (status,))
            self.status = status
            self.resp_headers = message.get("headers", ())
            self._set_response(RESP_STARTED)
            return _DONE
        raise RuntimeError("Unexpected ASGI message '%s' sent for an http scope." % (mtype,))

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
            if chunked:
                buf_add(b, LAST_CHUNK, LAST_CHUNK_LEN)
            if b.len:
                proto._write(buf_bytes(b))
            self._response_complete()
        elif b.len:
            proto._write(buf_bytes(b))

    cdef _build_head(self, bytes body, bint final):
        """Write status line and headers into proto.out: first the headers that change
        framing are found, response_framing() decides, then the head is written."""
        cdef HttpProtocol proto = self.proto
        cdef Buf* b = &proto.out
        cdef bytes name, value
        cdef const char* np
        cdef const char* vp
        cdef Py_ssize_t nl, vl, i
        cdef bint has_server = False, has_date = False, has_connection = False
        cdef bint app_chunked = False
        cdef long long clen
        cdef object headers = self.resp_headers
        cdef Framing framing

        for item in headers:
            name, value = item
            check_header(name, value)
            nl = PyBytes_GET_SIZE(name)
            np = PyBytes_AS_STRING(name)
            vp = PyBytes_AS_STRING(value)
            vl = PyBytes_GET_SIZE(value)
            if nl == CONTENT_LENGTH_NAME_LEN and lower_equals(np, nl, "content-length", nl):
                clen = 0
                if vl == 0 or vl > 18:      # 18 digits cannot overflow a long long
                    raise RuntimeError("Invalid Content-Length header: %r" % (value,))
                for i in range(vl):
                    if not (c'0' <= vp[i] <= c'9'):
                        raise RuntimeError("Invalid Content-Length header: %r" % (value,))
                    clen = clen * 10 + (vp[i] - c'0')
                self.expected_length = clen
            elif nl == TRANSFER_ENCODING_LEN and lower_equals(np, nl, "transfer-encoding", nl):
                if lower_contains(vp, vl, "chunked", CHUNKED_LEN):
                    app_chunked = True
            elif nl == CONNECTION_LEN and lower_equals(np, nl, "connection", nl):
                has_connection = True
                if lower_contains(vp, vl, "close", CLOSE_LEN):
                    self.keep_alive = False
            elif nl == SERVER_LEN and lower_equals(np, nl, "server", nl):
                has_server = True
            elif nl == DATE_LEN and lower_equals(np, nl, "date", nl):
                has_date = True

        framing = response_framing(self.status, self.expected_length >= 0, app_chunked, final,
                                   self.http10)
        if framing == FRAMING_INVALID:
            raise RuntimeError("Response has both Content-Length and Transfer-Encoding")
        self.framing = framing

        buf_add_bytes(b, <bytes>STATUS_LINES[self.status])
        buf_add_defaults(b, proto.ctx, has_server, has_date)
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
        if not has_connection:
            if not self.keep_alive:
                buf_add(b, CONNECTION_CLOSE, CONNECTION_CLOSE_LEN)
            elif self.http10:
                buf_add(b, CONNECTION_KEEP_ALIVE, CONNECTION_KEEP_ALIVE_LEN)
        buf_add(b, CRLF, CRLF_LEN)

    cdef _response_complete(self):
        cdef HttpProtocol proto = self.proto
        self._set_response(RESP_DONE)
        self._wake()
        if self.expected_length >= 0 and not self.is_head and self.framing != FRAMING_NONE and \
                self.sent_length < self.expected_length:
            # Fewer bytes than declared: the client would wait for the rest. Close.
            self.keep_alive = False
            proto._close()
            raise RuntimeError("Response content shorter than Content-Length")
        self._log_access(self.sent_length)
        if M != NULL:
            count_request(self.method, self.http10, self.status, self.t0)
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

    cdef _log_access(self, long long nbytes):
        cdef ServerContext ctx = self.proto.ctx
        if ctx.access_log is not None:
            try:
                ctx.access_log(self.scope, self.status, self.sent_length or nbytes,
                               monotonic() - self.t0)
            except BaseException:
                error_log.exception("Access log failed")

    cdef _time_out(self, double seconds):
        """--timeout-request: cancel the app; 504 if its response has not begun, else close
        (what was sent stays sent). Counted as a 504 refusal and logged."""
        cdef HttpProtocol proto = self.proto
        error_log.warning('Request timed out after %.1f s: "%s %s"; the app is cancelled',
                          seconds, self.scope["method"], self.scope["path"])
        if self.response < RESP_STREAMING:
            proto._send_error(504)
        else:
            if M != NULL:
                M.refused[504 - 100] += 1
            proto._close()
            self._connection_lost()
        if self.task is not None and not self.task.done():
            self.task.cancel()

    # what the app's end means for the response (the driver calls these) -------------------------

    cdef inline _app_done(self):
        cdef HttpProtocol proto = self.proto
        self.app_state = APP_DONE
        if self.task is not None:
            proto.ctx.tasks.discard(self.task)
            self.task = None
        proto.ctx.active_requests -= 1
        if M != NULL:
            M.in_flight -= 1

    cdef _app_returned(self, object result):
        cdef HttpProtocol proto = self.proto
        self._app_done()
        if result is not None:
            error_log.error("ASGI callable returned a value (%r); it should return None.", result)
        if self.disconnected:
            return
        if self.peer_eof and self.response == RESP_NONE:
            # The client left (it half-closed, receive() said http.disconnect) and the app
            # gave up on it: no error, as uvicorn, and nothing more to answer.
            proto._close()
            self._connection_lost()
        elif self.response == RESP_NONE:
            error_log.error("ASGI callable returned without starting response.")
            proto._send_error(500)
        elif self.response == RESP_STARTED:
            # The head waits for the first body message, so nothing is on the wire yet: the
            # client gets the 500 that is logged, not an empty reply.
            error_log.error("ASGI callable returned without sending a response body.")
            proto._send_error(500)
        elif self.response == RESP_STREAMING:
            error_log.error("ASGI callable returned without completing response.")
            proto._close()
            self._connection_lost()

    cdef _app_failed(self, object exc):
        cdef HttpProtocol proto = self.proto
        self._app_done()
        if self.disconnected and (isinstance(exc, (OSError, aio_CancelledError))
                                  or type(exc).__name__ == "ClientDisconnect"):
            error_log.debug("ASGI application ended after the client disconnected: %r", exc)
            return
        error_log.error("Exception in ASGI application\n", exc_info=exc)
        if M != NULL:
            M.app_exceptions += 1
        if self.disconnected:
            return
        if self.response < RESP_STREAMING:
            proto._send_error(500)
        elif self.response == RESP_STREAMING:
            # what was sent stays sent; the client sees the connection end early
            proto._close()
            self._connection_lost()


cdef object cycle_receive = RequestCycle.__dict__["receive"]
cdef object cycle_send = RequestCycle.__dict__["send"]
