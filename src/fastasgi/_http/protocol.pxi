# --- HttpProtocol: one HTTP/1.1 connection -------------------------------------------------------
#
# Connection states (ConnState), changed only through _set_state:
#
#   IDLE      no request in progress: waiting for one. _on_tick closes the connection once
#             keep_alive_timeout has passed since idle_since.
#   HEAD      a request head has begun and is not complete. _on_tick answers 408 after
#             timeout_request_head (slowloris).
#   REQUEST   one request is in progress (`cycle`). Its body is parsed as it comes (reading
#             pauses above HIGH_WATER until the app takes it). When its message is complete,
#             parsing stops (parse_paused) until its response is complete: what follows waits
#             in `pending` with reading paused, so a pipelining client cannot make us buffer
#             without bound and responses go out strictly in order. The request ends when both
#             its message and its response are complete (_cycle_done); a body the app did not
#             read is read and dropped first. _on_tick applies timeout_request_body (408),
#             timeout_request (504) and, for a body read only to be dropped, closes.
#   CLOSING   we close after the current write; nothing more is parsed.
#   UPGRADED  handed to the WebSocket protocol; this object is done.
#   CLOSED    the transport is gone.
#
# Legal transitions:
#   IDLE     -> HEAD      a request begins
#   HEAD     -> REQUEST   its head is complete and passed every check
#   REQUEST  -> IDLE      request and response complete, and the connection is kept alive
#   REQUEST  -> UPGRADED  a websocket handshake is handed over (IDLE -> UPGRADED: HTTP/2)
#   any of the three -> CLOSING (refusal, timeout, close after the response, abort)
#                    -> CLOSED  (connection_lost);  CLOSING -> CLOSED
#
# Orthogonal to the state: flow control (parse_paused, reading_paused, body_paused,
# writing_paused), keep-alive permission (keep_alive_allowed) and the peer (eof, served).

cdef bint CONN_NEXT[<int>CONN_STATES][<int>CONN_STATES]
cdef tuple CONN_NAMES = ("IDLE", "HEAD", "REQUEST", "CLOSING", "UPGRADED", "CLOSED")
for _a, _bs in {
    CONN_IDLE: (CONN_HEAD, CONN_UPGRADED, CONN_CLOSING, CONN_CLOSED),
    CONN_HEAD: (CONN_REQUEST, CONN_CLOSING, CONN_CLOSED),
    CONN_REQUEST: (CONN_IDLE, CONN_UPGRADED, CONN_CLOSING, CONN_CLOSED),
    CONN_CLOSING: (CONN_CLOSED,),
}.items():
    for _b in _bs:
        CONN_NEXT[_a][_b] = True

# During shutdown an idle connection is closed once it has been idle this long: a request may
# be on its way (a new connection's first, or a kept-alive one's next, which a proxy sends the
# moment it picks the connection). Answered, with Connection: close, not reset by our close.
cdef double SHUTDOWN_GRACE = 1.0


@cython.final
cdef class HttpProtocol:

    def __cinit__(self):
        buf_init(&self.out)

    def __dealloc__(self):
        buf_free(&self.out)

    def __init__(self, ServerContext ctx):
        self.ctx = ctx
        self.loop = ctx.loop
        self.parser = RequestParser(ctx, self)
        self.state = CONN_IDLE
        self.cycle = None
        self.corked = None
        self.keep_alive_allowed = True

    cdef inline int _set_state(self, ConnState new) except -1:
        if FASTASGI_DEBUG and not CONN_NEXT[<int>self.state][<int>new]:
            raise AssertionError("HttpProtocol: illegal transition %s -> %s"
                                 % (CONN_NAMES[<int>self.state], CONN_NAMES[<int>new]))
        self.state = new
        return 0

    @property
    def state_name(self):
        """The connection state's name (for tests and debugging)."""
        return CONN_NAMES[<int>self.state]

    # asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport):
        cdef ServerContext ctx = self.ctx
        self.transport = transport
        # The context every request of this connection starts from a copy of (driver.pxi),
        # taken once, here: later callbacks may run in whatever context last paused or resumed
        # reading, a request's Task among them (asyncio's transports copy the current context
        # when reading resumes: CPython issue 140947), and a request must never start from
        # another request's context.
        self.base_context = PyContext_CopyCurrent()
        ctx.connections.add(self)
        if M != NULL:
            M.connections_accepted += 1
            M.open_http += 1
        self.idle_since = ctx._clock()
        sockname = transport.get_extra_info("sockname")
        peername = transport.get_extra_info("peername")
        server = client = None
        if isinstance(sockname, tuple):
            server = (sockname[0], sockname[1])
        elif isinstance(sockname, str) and sockname:
            server = (sockname, None)
        if isinstance(peername, tuple):
            client = (peername[0], peername[1])
        # The ASGI extensions of its requests (exchange.pxi): one dict the scope copies share
        ssl_object = transport.get_extra_info("ssl_object")
        self.extensions = {"http.response.early_hint": {}, "http.response.pathsend": {},
                           "http.response.zerocopysend": {}}
        if ssl_object is not None and ctx.tls_extension is not None:
            self.extensions["tls"] = ctx.tls_extension(ssl_object)
        # Every key of the http scope, so that the per-request copy (a memcpy of the key
        # table) only has values replaced, never keys inserted or the table resized.
        self.scope_template = {
            "type": "http",
            "asgi": ASGI_VERSIONS,
            "http_version": HTTP_11,
            "method": None,
            "scheme": "https" if transport.get_extra_info("sslcontext") is not None else "http",
            "path": None,
            "raw_path": None,
            "query_string": EMPTY,
            "root_path": ctx.root_path,
            "headers": None,
            "client": client,
            "server": server,
            "state": None,
            "extensions": self.extensions,
        }
        if ctx.shutting_down:
            self.keep_alive_allowed = False
        if ctx.http2_only:
            # --http h2: every connection is HTTP/2 (prior knowledge in cleartext, RFC 9113
            # 3.3); nghttp2 checks the preface, and an invalid one is a connection error
            # (3.4: GOAWAY(PROTOCOL_ERROR)), never an HTTP/1.1 request
            h2_takeover(self, EMPTY)
        elif ctx.http2:   # HTTP/2 (h2.pxi): by ALPN over TLS, by the preface in cleartext
            if ssl_object is None:
                self.h2_undecided = True
            elif ssl_object.selected_alpn_protocol() == "h2":
                h2_takeover(self, EMPTY)

    def set_addresses(self, client, server):
        """Replace the scope's "client" and "server" for every request of this connection
        (the PROXY protocol layer calls it with what the proxy's header says)."""
        self.scope_template["client"] = client
        self.scope_template["server"] = server

    def connection_lost(self, exc):
        self._set_state(CONN_CLOSED)
        if M != NULL:
            M.connections_closed += 1
            M.open_http -= 1
        self.ctx.connections.discard(self)
        if self.cycle is not None:
            self.cycle._connection_lost()
        self._release_drain()

    def eof_received(self):
        # The client half-closed. Answer what it sent before (a client may shut down its
        # sending side and still wait for the answers), then close.
        cdef RequestCycle cycle = self.cycle
        self.eof = True
        if cycle is not None:
            if cycle.request < REQ_COMPLETE:
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
        if self.parse_paused and self.cycle is None and self.state < CONN_CLOSING:
            self._unpause_parsing()
        self._release_drain()

    def _release_drain(self):
        waiter = self.drain_waiter
        self.drain_waiter = None
        waiters_wake(waiter)

    def data_received(self, bytes data):
        if M != NULL:
            M.bytes_received += PyBytes_GET_SIZE(data)
        if self.state >= CONN_CLOSING:
            return
        if self.h2_undecided:
            data = h2_probe(self, data)
            if data is None:
                return
        if self.parse_paused or self.pending is not None:
            # behind a request in progress, or a resume of `pending` is already scheduled:
            # keep the byte order
            self.pending = data if self.pending is None else self.pending + data
            self._update_reading()
            return
        self._parse(data)

    # control from the server ---------------------------------------------------------------

    def shutdown(self):
        """Finish the exchange in flight (if any) with Connection: close; an idle connection
        closes after SHUTDOWN_GRACE of idleness (_on_tick), so a request crossing the close
        is served, not lost (a proxy's retry budget is small: nginx's is its server count)."""
        self.keep_alive_allowed = False

    def abort(self):
        """Close now and cancel the app's task for the request in progress, if any."""
        cdef RequestCycle cycle = self.cycle
        if self.state < CONN_CLOSING:
            self._set_state(CONN_CLOSING)
        if self.transport is not None:
            self.transport.abort()
        if cycle is not None:
            cycle._connection_lost()
            if cycle.task is not None and not cycle.task.done():
                cycle.task.cancel()

    cdef _on_tick(self, double now):
        """The timeout policy of a connection, applied once a second by ServerContext.tick."""
        cdef ServerContext ctx = self.ctx
        cdef RequestCycle cycle = self.cycle
        if self.state == CONN_IDLE:
            if now - self.idle_since >= ctx.keep_alive_timeout or (
                    not self.keep_alive_allowed and now - self.idle_since >= SHUTDOWN_GRACE):
                self._close()
        elif self.state == CONN_HEAD:
            if ctx.timeout_request_head and now - self.head_started > ctx.timeout_request_head:
                self._send_error(408)
        elif self.state == CONN_REQUEST:
            if ctx.timeout_request and cycle.app_state == APP_RUNNING and \
                    now - self.request_started > ctx.timeout_request:
                cycle._time_out(now - self.request_started)
            elif cycle.request == REQ_DISCARD:
                # the response is out; the rest of a body nobody reads stopped coming: the
                # connection would be kept for it alone, so close when either timeout says
                if now - self.body_activity > (ctx.timeout_request_body or ctx.keep_alive_timeout):
                    self._close()
            elif (ctx.timeout_request_body and cycle.receive_waiter is not None
                    and cycle.request < REQ_COMPLETE
                    and now - self.body_activity > ctx.timeout_request_body):
                self._send_error(408)

    # parsing ---------------------------------------------------------------------------------

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
                err = self.parser.execute(base + off, n - off)
                if self.exc is not None:
                    exc = self.exc
                    self.exc = None
                    error_log.error("Internal error while parsing a request", exc_info=exc)
                    self._send_error(500)
                    return
                off += self.parser.consumed
                if err == HPE_PAUSED:
                    # paused by _on_message_complete: one whole request has been parsed
                    llhttp_resume(&self.parser.parser)
                elif err == HPE_PAUSED_UPGRADE:
                    ws_takeover(self, data[off:])
                    return
                elif err != HPE_OK:
                    self._send_error(self.parser.error_status(err))
                    return
                cycle = self.cycle
                if cycle is not None and cycle.app_state == APP_PENDING and cycle.response == RESP_NONE:
                    self._start_cycle(cycle)
                    if self.state >= CONN_CLOSING:
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

    cdef int _on_message_begin(self) except -1:
        self._set_state(CONN_HEAD)
        self.head_started = self.ctx.now
        return self.parser._on_message_begin()

    cdef int _on_headers_complete(self) except -1:
        cdef RequestParser parser = self.parser
        cdef ServerContext ctx = self.ctx
        cdef llhttp_t* p = &parser.parser
        cdef dict scope
        self.served = True
        self.body_activity = self.request_started = ctx.now
        if parser._on_headers_complete() == FAIL:
            return FAIL
        scope = PyDict_Copy(self.scope_template)
        if p.http_minor == 0:
            scope["http_version"] = HTTP_10
        elif parser.te_trailers:
            # RFC 9110 6.5: a trailer section only for a client that said it accepts one
            if self.extensions_trailers is None:
                self.extensions_trailers = dict(self.extensions)
                self.extensions_trailers["http.response.trailers"] = {}
            scope["extensions"] = self.extensions_trailers
        scope["method"] = <str>METHODS[p.method]
        scope["headers"] = parser.headers
        scope["state"] = PyDict_Copy(ctx.state)
        fill_target(scope, parser.head.data, parser.url_len, ctx.root_path, &self.out)
        self.cycle = new_cycle(
            self, scope, p.method, p.http_minor == 0,
            bool(llhttp_should_keep_alive(p)) and self.keep_alive_allowed and not ctx.shutting_down,
            parser.expect_continue and p.http_minor != 0, parser.te_trailers and p.http_minor != 0)
        self._set_state(CONN_REQUEST)
        return 0

    cdef int _on_body(self, const char* at, size_t n) except -1:
        if self.parser._on_body(n) == FAIL:
            return FAIL
        self.body_activity = self.ctx.now
        if self.cycle is not None:
            self.cycle._on_body(at, n)
        return 0

    cdef int _on_message_complete(self) except -1:
        cdef RequestCycle cycle = self.cycle
        if cycle is not None:
            cycle._message_complete()
            if cycle.response == RESP_DONE:
                self._cycle_done(cycle)
        if self.parser.parser.upgrade:
            return 0    # llhttp returns HPE_PAUSED_UPGRADE
        return HPE_PAUSED

    # the request in progress ---------------------------------------------------------------

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
        if M != NULL:
            M.in_flight += 1
        drive(cycle, ctx.app, self.base_context)

    cdef _cycle_done(self, RequestCycle cycle):
        """Both the response and the request message are complete."""
        if self.cycle is not cycle:
            return
        self.cycle = None
        # the clock, not the last tick's time: the keep-alive timeout is never cut short
        self.idle_since = self.ctx._clock()
        self.body_paused = False
        if self.state >= CONN_CLOSING:
            return
        if not cycle.keep_alive or not self.keep_alive_allowed or \
                (self.eof and self.pending is None):
            self._close()
            return
        self._set_state(CONN_IDLE)
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
        if data is None or self.state >= CONN_CLOSING or self.parse_paused:
            return      # closed meanwhile, or paused again: a later resume takes `pending`
        if self.writing_paused:
            # the client stopped reading again before this ran: resume_writing resumes
            self.parse_paused = True
            return
        self.pending = None
        self._parse(data)

    # flow control and writing -------------------------------------------------------------

    cdef _update_reading(self):
        cdef bint want_pause = (self.parse_paused and self.pending is not None) or self.body_paused
        if self.transport is None or self.state >= CONN_CLOSING:
            return
        if want_pause and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()
        elif not want_pause and self.reading_paused:
            self.reading_paused = False
            self.transport.resume_reading()

    cdef _write(self, bytes data):
        if M != NULL:
            M.bytes_sent += PyBytes_GET_SIZE(data)
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
        if self.transport is None or self.transport.is_closing():
            return
        if corked:
            if len(corked) == 1:
                self.transport.write(corked[0])
            else:
                self.transport.writelines(corked)
        if self.state >= CONN_CLOSING:
            self.transport.close()

    cdef _close(self):
        if self.state < CONN_CLOSING:
            self._set_state(CONN_CLOSING)
        if self.corked is None and self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    # answers of the server's own ------------------------------------------------------------

    cdef _send_error(self, int status):
        """Answer a request the app never saw or could not answer (bad input, limits,
        timeouts, an app that failed before its head went out) and close."""
        cdef RequestCycle cycle = self.cycle
        cdef Buf* b = &self.out
        cdef Py_ssize_t body_len = len(<str>REASONS[status])
        cdef bint head = self.parser.url_len > 0 and self.parser.parser.method == HTTP_HEAD
        if cycle is not None:
            if cycle.response >= RESP_STREAMING:
                # bytes of a response are on the wire already: all we can do is close
                self._close()
                cycle._connection_lost()
                return
            cycle._set_response(RESP_DONE)
            cycle.keep_alive = False
            cycle.status = status
        if M != NULL and 100 <= status <= 599:
            M.refused[status - 100] += 1
        b.len = 0
        buf_add_error(b, self.ctx, status, None, EMPTY, head)
        if head:
            body_len = 0
        self._write(buf_bytes(b))
        if cycle is not None:
            cycle._account(body_len)
            cycle._connection_lost()
        elif self.ctx.access_log is not None and self.state == CONN_HEAD:
            self._log_rejected_head(status, body_len)
        self._close()

    cdef _log_rejected_head(self, int status, Py_ssize_t nbytes):
        """Access-log a request refused before its head was complete (400, 408, 413, 414,
        431, 501, 505)."""
        cdef dict scope = self.parser.scope_so_far(self.scope_template, self.ctx.root_path,
                                                   &self.out)
        try:
            self.ctx.access_log(scope, status, nbytes, 0.0)
        except BaseException:
            error_log.exception("Access log failed")
