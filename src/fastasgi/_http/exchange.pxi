# --- Exchange: the ONE ASGI request model that HTTP/1.1 and HTTP/2 share ------------------------
#
# An Exchange is one request and its response as the app sees them: receive(), send(), the
# state of both messages, the body buffer, the send() message rules, what the app's end
# means, the access log and the metrics. RequestCycle (cycle.pxi, HTTP/1.1) and H2Stream
# (h2stream.pxi, HTTP/2) subclass it and hold only their wire effects; every rule an app can
# observe is written once, here.
#
# The response (RespState), changed only through _set_response:
#
#   NONE       the app has sent nothing
#   STARTED    http.response.start arrived; the head is held until the first body message so
#              that status line, headers and body go out in one write
#   STREAMING  the head is on the wire (and maybe some body); the rest is to come
#   DONE       the last body message (or the trailers) is written, or the server answered in
#              the app's place (an error response; then nothing of the app's reaches the wire)
#
#   NONE -> STARTED -> STREAMING -> DONE: STREAMING as the head is written, DONE with the
#   last body message (both within one send() when the first body message is the last);
#   NONE -> DONE and STARTED -> DONE: the server's own response instead of the app's
#
# The request message as the app reads it (ReqState), changed only through _set_request:
#
#   BODY       more body may come
#   DISCARD    more body may come, but the response is done: it is read and dropped (HTTP/1.1:
#              so the connection can carry the next request; HTTP/2: the stream stays
#              half-closed and every frame the client sends is still checked, RFC 9113 8.1)
#   COMPLETE   the whole message has arrived (its end may still be buffered for the app)
#   DELIVERED  the app has had the final http.request message (more_body False)
#
#   BODY -> DISCARD -> COMPLETE;  BODY -> COMPLETE -> DELIVERED
#
# Orthogonal: disconnected (the connection or stream is gone: receive() says http.disconnect,
# send() raises ClientDisconnected), body_ended (the last body message is sent; with trailers
# the response is DONE only after them), and the app coroutine's AppState (driver.pxi).
#
# The ASGI extensions both protocols carry, each written once here: http.response.trailers
# (trailers_ok: HTTP/2 always, HTTP/1.1 when the request's TE names "trailers"; the fields are
# validated as response fields and those RFC 9110 6.5.1 keeps out of trailers are refused),
# http.response.early_hint (RFC 8297: 103 Early Hints before the response, its links as Link
# fields). scope["extensions"] advertises them (one dict per connection, built at its start,
# with the tls extension on a TLS connection).
#
# The response-header policy is Exchange's too (_scan_headers: validation, Content-Length
# parsed once, the fields that change what the server writes); the server's own fields
# come from the context (one Server value, the Date line, --header).
#
# The wire effects a subclass provides: _send_body (head and body bytes), _send_trailers,
# _send_wait (what send() returns when the transport or window holds it back), _body_taken
# (the app took buffered body: reading or the window reopens), _before_wait (what is owed
# before receive() waits), _client_left, _send_error (the server's own answer) and _abort
# (close the connection, or RST_STREAM).

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

# Why _abort() ends an exchange: the app failed mid-response, or --timeout-request
cdef enum:
    ABORT_FAILED = 0
    ABORT_TIMEOUT = 1

# 18 decimal digits cannot overflow a long long
cdef enum:
    LENGTH_DIGITS = 18

# What the response-header policy found among the app's fields (Exchange._scan_headers)
cdef enum:
    FOUND_SERVER = 1
    FOUND_DATE = 2
    FOUND_CONNECTION = 4
    FOUND_CLOSE = 8
    FOUND_CHUNKED = 16
    FOUND_LENGTH = 32


cdef inline long long parse_length(const char* p, Py_ssize_t n) noexcept:
    """A Content-Length value (RFC 9110 8.6: 1*DIGIT), or -1 when it is not one or does not
    fit. The one parser of the field, for requests and responses on both protocols."""
    cdef long long value = 0
    cdef Py_ssize_t i
    if n == 0 or n > LENGTH_DIGITS:
        return -1
    for i in range(n):
        if not (c'0' <= p[i] <= c'9'):
            return -1
        value = value * 10 + (p[i] - c'0')
    return value


cdef class Exchange:

    cdef inline int _set_response(self, RespState new) except -1:
        if FASTASGI_DEBUG and not RESP_NEXT[<int>self.response][<int>new]:
            raise AssertionError("%s response: illegal transition %s -> %s"
                                 % (type(self).__name__, RESP_NAMES[<int>self.response],
                                    RESP_NAMES[<int>new]))
        self.response = new
        return 0

    cdef inline int _set_request(self, ReqState new) except -1:
        if FASTASGI_DEBUG and not REQ_NEXT[<int>self.request][<int>new]:
            raise AssertionError("%s request: illegal transition %s -> %s"
                                 % (type(self).__name__, REQ_NAMES[<int>self.request],
                                    REQ_NAMES[<int>new]))
        self.request = new
        return 0

    # the request body -------------------------------------------------------------------------

    cdef int _buffer(self, const char* at, size_t n) except -1:
        """Body bytes for the app: kept until receive() takes them."""
        cdef bytes chunk = PyBytes_FromStringAndSize(at, n)
        if self.body is None:
            self.body = chunk
        elif type(self.body) is bytes:
            self.body = [self.body, chunk]
        else:
            (<list>self.body).append(chunk)
        self.body_len += n
        self._wake()
        return 0

    cdef _message_complete(self):
        if self.request < REQ_COMPLETE:
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
        cdef Py_ssize_t n = self.body_len
        self.body = None
        self.body_len = 0
        self._body_taken(n)
        if type(body) is list:
            return b"".join(body)
        return body

    cdef int _body_taken(self, Py_ssize_t n) except -1:
        return 0

    cdef int _before_wait(self) except -1:
        """receive() has nothing to hand out and is about to wait: 1 if it should say
        http.disconnect instead."""
        return 0

    async def receive(self):
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
            if self._before_wait():
                return {"type": T_DISCONNECT}
            # Nothing more to hand out: wait for more body, the response or a disconnect.
            waiter = self.loop.create_future()
            self.receive_waiter = waiter_add(self.receive_waiter, waiter)
            try:
                await waiter
            except BaseException:
                # cancelled: another receive() may be waiting, and stays so
                self.receive_waiter = waiter_remove(self.receive_waiter, waiter)
                raise

    # the response ------------------------------------------------------------------------------

    def send(self, message):
        """ASGI send. Does its work right away and returns an awaitable: the shared,
        already-complete _DONE when nothing has to wait (no coroutine object, no loop
        round-trip), or a future while the transport or the flow-control window holds the
        response back."""
        # ASGI messages are dicts: read them with the dict's C API (anything else is copied)
        cdef dict m = message if type(message) is dict else dict(message)
        cdef str mtype = m["type"]
        cdef object body
        if self.disconnected:
            raise ClientDisconnected("client disconnected")
        if mtype == T_BODY:
            if self.response == RESP_NONE:
                raise RuntimeError(
                    "Unexpected ASGI message 'http.response.body' sent, before "
                    "'http.response.start'.")
            if self.response == RESP_DONE or self.body_ended:
                raise RuntimeError(
                    "Unexpected ASGI message 'http.response.body' sent, after response "
                    "already completed.")
            body = m.get("body", EMPTY)
            if type(body) is not bytes:
                body = bytes(body)
            self._send_body(<bytes>body, m.get("more_body", False))
            return self._send_wait()
        if mtype == T_START:
            if self.response != RESP_NONE:
                raise RuntimeError(
                    "Unexpected ASGI message 'http.response.start' sent, after response "
                    "already started.")
            status = m["status"]
            if type(status) is not int or not (100 <= <int>status <= 599):
                raise RuntimeError("Invalid HTTP status code %r in response." % (status,))
            self.status = status
            self.resp_headers = m.get("headers", ())
            if self.trailers_ok:
                self.trailers = bool(m.get("trailers", False))
            self._set_response(RESP_STARTED)
            return _DONE
        if mtype == T_TRAILERS and self.trailers_ok:
            if not self.trailers or self.response != RESP_STREAMING or not self.body_ended:
                raise RuntimeError("Unexpected ASGI message 'http.response.trailers' sent: trailers"
                                   " need 'trailers': True in http.response.start and the whole body.")
            if self.trailer_fields is None:
                self.trailer_fields = []
            for name, value in m.get("headers", ()):
                check_header(name, value)
                name = name.lower()
                if name in FORBIDDEN_TRAILERS:
                    raise RuntimeError("Response trailer %r is not allowed in a trailer section"
                                       " (RFC 9110 6.5.1)." % (name,))
                self.trailer_fields.append((name, value))
            if not m.get("more_trailers", False):
                self._send_trailers()
            return _DONE
        if mtype == T_EARLY_HINT:
            # RFC 8297: 103 Early Hints, Link fields the client may act on before the response
            if self.response != RESP_NONE:
                raise RuntimeError("Unexpected ASGI message 'http.response.early_hint' sent, after "
                                   "'http.response.start'.")
            links = []
            for link in m.get("links", ()):
                if type(link) is not bytes:
                    link = bytes(link)
                check_header(LINK, link)
                links.append(link)
            if links:
                self._send_early_hint(links)
            return self._send_wait()
        if mtype == T_PATHSEND or mtype == T_ZEROCOPYSEND:
            # the Path Send and Zero Copy Send extensions: last, so other messages never
            # pay for them
            return self._send_file(m, mtype == T_PATHSEND)
        raise RuntimeError("Unexpected ASGI message '%s' sent for an http scope." % (mtype,))

    cdef _send_body(self, bytes body, bint more):
        raise NotImplementedError

    cdef _send_trailers(self):
        raise NotImplementedError

    cdef _send_early_hint(self, list links):
        raise NotImplementedError

    cdef object _send_wait(self):
        return _DONE

    cdef object _send_file(self, dict m, bint by_path):
        """A file as the body (filesend.pxi: the same for both protocols, through _send_body
        and _send_wait)."""
        return send_file(self, m, by_path)

    cdef int _scan_headers(self) except -1:
        """The response-header policy of both protocols, one pass over the app's fields: each
        field validated (RFC 9110 5.1, 5.5), Content-Length parsed once (expected_length), and
        which fields the server would also write (Server, Date) or that decide the framing
        (Transfer-Encoding, Connection) the app sent: FOUND_* flags. The protocol then writes
        the head its own way."""
        cdef int found = 0
        cdef bytes name, value
        cdef const char* np
        cdef const char* vp
        cdef Py_ssize_t nl, vl
        for item in self.resp_headers:
            name, value = item
            check_header(name, value)
            nl = PyBytes_GET_SIZE(name)
            np = PyBytes_AS_STRING(name)
            vp = PyBytes_AS_STRING(value)
            vl = PyBytes_GET_SIZE(value)
            if nl == CONTENT_LENGTH_NAME_LEN and lower_equals(np, nl, "content-length", nl):
                self.expected_length = parse_length(vp, vl)
                if self.expected_length < 0:
                    raise RuntimeError("Invalid Content-Length header: %r" % (value,))
                found |= FOUND_LENGTH
            elif nl == TRANSFER_ENCODING_LEN and lower_equals(np, nl, "transfer-encoding", nl):
                if lower_contains(vp, vl, "chunked", CHUNKED_LEN):
                    found |= FOUND_CHUNKED
            elif nl == CONNECTION_LEN and lower_equals(np, nl, "connection", nl):
                found |= FOUND_CONNECTION
                if lower_contains(vp, vl, "close", CLOSE_LEN):
                    found |= FOUND_CLOSE
            elif nl == SERVER_LEN and lower_equals(np, nl, "server", nl):
                found |= FOUND_SERVER
            elif nl == DATE_LEN and lower_equals(np, nl, "date", nl):
                found |= FOUND_DATE
        return found

    cdef _response_done(self):
        """The response is complete: receive() says http.disconnect, and it is accounted."""
        self._set_response(RESP_DONE)
        self._wake()
        self._account(self.sent_length)

    cdef _account(self, long long nbytes):
        """The access-log line and the count of a completed response (the app's or ours)."""
        cdef ServerContext ctx = self.ctx
        if ctx.access_log is not None:
            try:
                ctx.access_log(self.scope, self.status, nbytes, monotonic() - self.t0)
            except BaseException:
                error_log.exception("Access log failed")
        if M != NULL:
            count_request_at(self.m_protocol, self.m_method, self.status, self.t0)

    # the server's own answers and aborts (the subclass's wire effects) ---------------------------

    cdef _send_error(self, int status):
        raise NotImplementedError

    cdef _abort(self, int why):
        raise NotImplementedError

    cdef bint _client_left(self) except -1:
        """The app returned without a response: 1 if that is because the client left (no
        error then), after ending the exchange."""
        return 0

    cdef _time_out(self, double seconds):
        """--timeout-request: cancel the app; 504 if its response has not begun, else abort
        (what was sent stays sent). Counted as a 504 refusal and logged."""
        error_log.warning('Request timed out after %.1f s: "%s %s"; the app is cancelled',
                          seconds, self.scope["method"], self.scope["path"])
        if self.response < RESP_STREAMING:
            self._send_error(504)
        else:
            if M != NULL:
                M.refused[504 - 100] += 1
            self._abort(ABORT_TIMEOUT)
        if self.task is not None and not self.task.done():
            self.task.cancel()

    # what the app's end means for the response (the driver calls these) -------------------------

    cdef _app_done(self):
        cdef ServerContext ctx = self.ctx
        self.app_state = APP_DONE
        if self.task is not None:
            ctx.tasks.discard(self.task)
            self.task = None
        ctx.active_requests -= 1
        if M != NULL:
            M.in_flight -= 1

    cdef _app_returned(self, object result):
        self._app_done()
        if result is not None:
            error_log.error("ASGI callable returned a value (%r); it should return None.", result)
        if self.disconnected:
            return
        if self.response == RESP_NONE:
            if self._client_left():
                return
            error_log.error("ASGI callable returned without starting response.")
            self._send_error(500)
        elif self.response == RESP_STARTED:
            # The head waits for the first body message, so nothing is on the wire yet: the
            # client gets the 500 that is logged, not an empty reply.
            error_log.error("ASGI callable returned without sending a response body.")
            self._send_error(500)
        elif self.response == RESP_STREAMING:
            error_log.error("ASGI callable returned without completing response.")
            self._abort(ABORT_FAILED)

    cdef _app_failed(self, object exc):
        self._app_done()
        if self.disconnected and (isinstance(exc, (OSError, aio_CancelledError))
                                  or type(exc).__name__ == "ClientDisconnect"):
            # Starlette's ClientDisconnect, an OSError from a write, the cancellation of the
            # server's shutdown: the app ended because the client did
            error_log.debug("ASGI application ended after the client disconnected: %r", exc)
            return
        error_log.error("Exception in ASGI application\n", exc_info=exc)
        if M != NULL:
            M.app_exceptions += 1
        if self.disconnected:
            return
        if self.response < RESP_STREAMING:
            self._send_error(500)
        elif self.response == RESP_STREAMING:
            # what was sent stays sent; the client sees the exchange end early
            self._abort(ABORT_FAILED)


cdef object exchange_receive = Exchange.__dict__["receive"]
cdef object exchange_send = Exchange.__dict__["send"]
