# --- H2Protocol: one HTTP/2 connection, over the vendored nghttp2 ------------------------------------
#
# nghttp2 (csrc/nghttp2, Debian's source with its security patches) does the framing, HPACK,
# stream states, flow-control accounting, SETTINGS and the protocol errors of RFC 9113 and
# RFC 7541; this layer maps its streams onto H2Stream requests (h2stream.pxi) that the app
# driver runs as it runs HTTP/1.1 requests.
#
# How a connection becomes HTTP/2 (HttpProtocol hands it over, h2_takeover): on a cleartext
# listener, when its first bytes are the client connection preface (RFC 9113 3.4, "prior
# knowledge", h2c); over TLS, when ALPN chose "h2" (RFC 9113 3.3). The HTTP/1.1 Upgrade: h2c
# mechanism, removed by RFC 9113, stays ignored (served as HTTP/1.1).
#
# Connection states (H2State), changed only through _set_state:
#
#   OPEN     serving streams. _on_tick sends GOAWAY and closes once keep_alive_timeout has
#            passed with no stream open.
#   GOAWAY   GOAWAY(NO_ERROR) sent (the server shuts down): the streams it covers finish, no
#            new one starts (nghttp2 ignores them); closed when the last one ends.
#   CLOSED   the transport is gone.
#
#   OPEN -> GOAWAY -> CLOSED;  OPEN -> CLOSED (a protocol error: nghttp2 queued its GOAWAY,
#   which goes out first; an idle timeout; the peer left)
#
# Flow control, both ways:
# - request bodies: nghttp2 sends no WINDOW_UPDATE by itself (no_auto_window_update); a
#   stream's bytes are "consumed" when its app takes them in receive(), so a client can have
#   at most the stream window unread per stream and the connection window unread per
#   connection, and the server never buffers more than that;
# - response bodies: send() hands bytes to the stream's buffer, nghttp2 takes them as the
#   client's windows allow; send() waits while more than HIGH_WATER is buffered, or while the
#   transport is paused. A client that does not read at all (the transport pauses writing)
#   is not read from either, so PING or SETTINGS floods cannot pile up answers.
#
# Output is written by _flush, once per data_received (the responses of every stream that
# answered while the input was processed go out in one write), and after each send() or
# receive() that produced frames outside of it.

cdef nghttp2.nghttp2_session_callbacks* H2_CALLBACKS = NULL
cdef nghttp2.nghttp2_option* H2_OPTION = NULL
cdef bytes H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
cdef Py_ssize_t H2_PREFACE_LEN = 24
# Frames that advance no request (PING, SETTINGS, PRIORITY, RST_STREAM, an empty DATA that
# does not end its stream) cost the server work at the client's whim: the "empty frames",
# "ping / settings flood" and "reset flood" denials of service (CVE-2019-9512, -9514, -9515,
# -9518) and rapid reset (CVE-2023-44487: each HEADERS starts an app, its RST_STREAM ends it).
# A connection may send this many per second (a browser sends a handful); beyond it the
# connection ends with GOAWAY(ENHANCE_YOUR_CALM), counted before nghttp2 processes the frame,
# so no more of the read is processed. nghttp2's own reset rate limit (below) stays as a
# second line.
cdef int H2_IDLE_FRAMES = 1000
cdef bint H2_NEXT[<int>H2_STATES][<int>H2_STATES]
cdef tuple H2_NAMES = ("OPEN", "GOAWAY", "CLOSED")
H2_NEXT[<int>H2_OPEN][<int>H2_GOAWAY] = True
H2_NEXT[<int>H2_OPEN][<int>H2_CLOSED] = True
H2_NEXT[<int>H2_GOAWAY][<int>H2_CLOSED] = True


cdef _h2_setup():
    """The callbacks and options every session shares, made once."""
    global H2_CALLBACKS, H2_OPTION
    if nghttp2.nghttp2_session_callbacks_new(&H2_CALLBACKS) != 0 or \
            nghttp2.nghttp2_option_new(&H2_OPTION) != 0:
        raise MemoryError()
    nghttp2.nghttp2_session_callbacks_set_on_begin_headers_callback(H2_CALLBACKS, h2_on_begin_headers)
    nghttp2.nghttp2_session_callbacks_set_on_header_callback(H2_CALLBACKS, h2_on_header)
    nghttp2.nghttp2_session_callbacks_set_on_frame_recv_callback(H2_CALLBACKS, h2_on_frame_recv)
    nghttp2.nghttp2_session_callbacks_set_on_data_chunk_recv_callback(H2_CALLBACKS, h2_on_data_chunk)
    nghttp2.nghttp2_session_callbacks_set_on_stream_close_callback(H2_CALLBACKS, h2_on_stream_close)
    nghttp2.nghttp2_session_callbacks_set_on_frame_send_callback(H2_CALLBACKS, h2_on_frame_send)
    nghttp2.nghttp2_session_callbacks_set_on_begin_frame_callback(H2_CALLBACKS, h2_on_begin_frame)
    # request bodies are consumed as the app reads them (see the top of this file)
    nghttp2.nghttp2_option_set_no_auto_window_update(H2_OPTION, 1)
    # CVE-2023-44487 (rapid reset): at most 1000 streams reset by the client in a burst, then
    # 33 a second; beyond it the connection ends with ENHANCE_YOUR_CALM. nghttp2's values,
    # stated here because they are the defence.
    nghttp2.nghttp2_option_set_stream_reset_rate_limit(H2_OPTION, 1000, 33)
    # CVE-2024-28182 (CONTINUATION flood): at most 8 CONTINUATION frames after a HEADERS
    nghttp2.nghttp2_option_set_max_continuations(H2_OPTION, 8)
    # SETTINGS floods: at most 32 entries in one SETTINGS frame, and at most 1000 ACKs (of
    # SETTINGS and PING) waiting to be written before the connection ends
    nghttp2.nghttp2_option_set_max_settings(H2_OPTION, 32)
    nghttp2.nghttp2_option_set_max_outbound_ack(H2_OPTION, 1000)


_h2_setup()


# --- response fields -------------------------------------------------------------------------------

# the Date field, made from the shared Date line once per second
cdef bytes h2_date_line = None
cdef tuple h2_date = None


cdef tuple h2_date_field():
    global h2_date_line, h2_date
    if date_line is not h2_date_line:
        h2_date_line = date_line
        h2_date = (b"date", date_line[6:PyBytes_GET_SIZE(date_line) - 2])
    return h2_date


cdef inline bint has_upper(const char* p, Py_ssize_t n) noexcept:
    cdef Py_ssize_t i
    for i in range(n):
        if c'A' <= p[i] <= c'Z':
            return True
    return False


cdef inline bint is_hop_field(const char* p, Py_ssize_t n) noexcept:
    """RFC 9113 8.2.2: a connection-specific field an HTTP/2 response must not carry."""
    return (n == 10 and (memcmp(p, "connection", 10) == 0 or memcmp(p, "keep-alive", 10) == 0)) \
        or (n == 16 and memcmp(p, "proxy-connection", 16) == 0) \
        or (n == 17 and memcmp(p, "transfer-encoding", 17) == 0) \
        or (n == 7 and memcmp(p, "upgrade", 7) == 0)


cdef bytes decimal(Buf* scratch, long long v):
    """v in decimal digits, through the connection's scratch buffer (buf_add_int)."""
    scratch.len = 0
    buf_add_int(scratch, v, 10)
    return buf_bytes(scratch)


@cython.final
cdef class H2Protocol:

    def __cinit__(self):
        buf_init(&self.scratch)

    def __dealloc__(self):
        if self.session != NULL:
            nghttp2.nghttp2_session_del(self.session)
            self.session = NULL
        buf_free(&self.scratch)

    def __init__(self, ServerContext ctx):
        self.ctx = ctx
        self.loop = ctx.loop
        self.streams = {}
        self.state = H2_OPEN
        if nghttp2.nghttp2_session_server_new2(&self.session, H2_CALLBACKS, <void*>self,
                                               H2_OPTION) != 0:
            raise MemoryError()

    cdef inline int _set_state(self, H2State new) except -1:
        if FASTASGI_DEBUG and not H2_NEXT[<int>self.state][<int>new]:
            raise AssertionError("H2Protocol: illegal transition %s -> %s"
                                 % (H2_NAMES[<int>self.state], H2_NAMES[<int>new]))
        self.state = new
        return 0

    @property
    def state_name(self):
        return H2_NAMES[<int>self.state]

    def _take_over(self, transport, dict template, object base_context, bytes data):
        """Start serving `transport` (HttpProtocol's, already connected): the server's
        SETTINGS first (RFC 9113 3.4), then what the client has sent so far."""
        cdef ServerContext ctx = self.ctx
        cdef nghttp2.nghttp2_settings_entry iv[4]
        cdef tuple settings = ctx.h2_settings
        self.transport = transport
        self.base_context = base_context
        ctx.connections.add(self)
        self.idle_since = ctx._clock()
        self.scope_template = dict(template)
        self.scope_template["http_version"] = HTTP_2
        # one extensions dict for the connection's scopes (the scope copy shares it)
        self.scope_template["extensions"] = {"http.response.trailers": {},
                                             "http.response.pathsend": {},
                                             "http.response.zerocopysend": {}}
        self.default_nv = [tuple(line.split(b": ", 1)) for line in ctx.extra_lines.split(b"\r\n")
                           if line]
        iv[0].settings_id = nghttp2.NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS
        iv[0].value = settings[0]
        iv[1].settings_id = nghttp2.NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE
        iv[1].value = settings[1]
        iv[2].settings_id = nghttp2.NGHTTP2_SETTINGS_MAX_FRAME_SIZE
        iv[2].value = self.max_frame_size = settings[3]
        iv[3].settings_id = nghttp2.NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE
        iv[3].value = settings[4]
        nghttp2.nghttp2_submit_settings(self.session, nghttp2.NGHTTP2_FLAG_NONE, iv, 4)
        nghttp2.nghttp2_session_set_local_window_size(self.session, nghttp2.NGHTTP2_FLAG_NONE, 0,
                                                      settings[2])
        if ctx.shutting_down:
            self.shutdown()
        if data:
            self.data_received(data)
        else:
            self._flush()

    # asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport):
        # HttpProtocol made the connection; H2Protocol is reached only through _take_over.
        raise RuntimeError("H2Protocol starts through h2_takeover")

    def connection_lost(self, exc):
        cdef H2Stream stream
        if self.state != H2_CLOSED:
            self._set_state(H2_CLOSED)
        if M != NULL:
            M.connections_closed += 1
            M.open_http2 -= 1
        self.ctx.connections.discard(self)
        self.transport = None
        for stream in list(self.streams.values()):
            stream._closed(nghttp2.NGHTTP2_CANCEL)  # receive() and a waiting send() end
        self.streams.clear()

    def eof_received(self):
        # The client will send nothing more: no stream can complete its request, and no
        # WINDOW_UPDATE can come for a response. Close (streams see http.disconnect).
        return None

    def pause_writing(self):
        self.writing_paused = True
        if self.transport is not None and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_writing(self):
        self.writing_paused = False
        if self.transport is not None and self.reading_paused:
            self.reading_paused = False
            self.transport.resume_reading()
        self._release_senders()

    cdef _release_senders(self):
        cdef H2Stream stream
        for stream in list(self.streams.values()):
            if stream.send_waiter is not None and stream.out_len <= HIGH_WATER:
                waiter = stream.send_waiter
                stream.send_waiter = None
                waiters_wake(waiter)

    def data_received(self, bytes data):
        cdef ssize_t rv
        if M != NULL:
            M.bytes_received += PyBytes_GET_SIZE(data)
        if self.state == H2_CLOSED or self.session == NULL:
            return
        self.in_recv = True
        try:
            rv = nghttp2.nghttp2_session_mem_recv(self.session, <const uint8_t*>PyBytes_AS_STRING(data),
                                                  PyBytes_GET_SIZE(data))
        finally:
            self.in_recv = False
        if self.exc is not None:
            exc = self.exc
            self.exc = None
            error_log.error("Internal error on an HTTP/2 connection", exc_info=exc)
            nghttp2.nghttp2_session_terminate_session(self.session, nghttp2.NGHTTP2_INTERNAL_ERROR)
        elif self.violation:
            error_log.debug("HTTP/2 connection error %d from %s", self.violation,
                            self.scope_template["client"])
            nghttp2.nghttp2_session_terminate_session(self.session, self.violation)
        elif self.flooded:
            error_log.warning("HTTP/2 client %s sent more than %d frames a second that advance no"
                              " request; closing the connection (ENHANCE_YOUR_CALM)",
                              self.scope_template["client"], H2_IDLE_FRAMES)
            nghttp2.nghttp2_session_terminate_session(self.session, nghttp2.NGHTTP2_ENHANCE_YOUR_CALM)
        elif rv < 0:
            # A connection error (RFC 9113 5.4.1): nghttp2 has queued the GOAWAY with its code,
            # or the client never sent the preface. What is queued goes out, then the close.
            error_log.debug("HTTP/2 connection error: %s",
                            nghttp2.nghttp2_strerror(<int>rv).decode("ascii", "replace"))
            nghttp2.nghttp2_session_terminate_session(self.session, nghttp2.NGHTTP2_PROTOCOL_ERROR)
        self._flush()

    # control from the server -----------------------------------------------------------------

    def shutdown(self):
        """GOAWAY: the streams already started finish, no new one starts; then close."""
        if self.state != H2_OPEN:
            return
        nghttp2.nghttp2_submit_goaway(self.session, nghttp2.NGHTTP2_FLAG_NONE,
                                      nghttp2.nghttp2_session_get_last_proc_stream_id(self.session),
                                      nghttp2.NGHTTP2_NO_ERROR, NULL, 0)
        self._set_state(H2_GOAWAY)
        self._flush()

    def abort(self):
        """Close now and cancel every stream's app."""
        cdef H2Stream stream
        for stream in list(self.streams.values()):
            stream.disconnected = True
            stream._wake()
            if stream.task is not None and not stream.task.done():
                stream.task.cancel()
        if self.transport is not None:
            self.transport.abort()

    cdef _on_tick(self, double now):
        cdef H2Stream stream
        cdef ServerContext ctx = self.ctx
        self.idle_frames = 0
        for stream in list(self.streams.values()):
            self._stream_timeouts(stream, now)
        if not self.streams and self.state != H2_CLOSED and (
                now - self.idle_since >= ctx.keep_alive_timeout or ctx.shutting_down):
            if self.state == H2_OPEN:
                self.shutdown()
            self._close()

    cdef _stream_timeouts(self, H2Stream stream, double now):
        """The timeouts of one stream, applied once a second by _on_tick."""
        cdef ServerContext ctx = self.ctx
        cdef double stall_limit
        if stream.scope is None:
            # A field block that never ends holds the whole connection (RFC 9113 6.10: nothing
            # else may come meanwhile): the slowloris of HTTP/2, bounded as HTTP/1.1's head.
            if ctx.timeout_request_head and now - stream.started > ctx.timeout_request_head:
                error_log.info("HTTP/2 client %s left a request head unfinished for %.0f s; closing",
                               self.scope_template["client"], now - stream.started)
                nghttp2.nghttp2_session_terminate_session(self.session,
                                                          nghttp2.NGHTTP2_ENHANCE_YOUR_CALM)
                self._flush()
            return
        if ctx.timeout_request and stream.app_state == APP_RUNNING and \
                now - stream.started > ctx.timeout_request:
            stream._time_out(now - stream.started)
            return
        if stream.request == REQ_DISCARD and \
                now - stream.discard_since > (ctx.timeout_request_body or ctx.keep_alive_timeout):
            # the response is complete and the unread upload has not ended (h2stream.pxi)
            stream._stop_upload()
            return
        if ctx.timeout_request_body and stream.receive_waiter is not None and \
                stream.request < REQ_COMPLETE and now - stream.body_activity > ctx.timeout_request_body:
            stream._send_error(408)
            return
        # A response the client's flow-control window holds back: a client that never opens
        # it would hold the stream (and the app's memory) forever. The same bound as a body
        # that stops coming (nginx's send_timeout plays this part for writes).
        if stream.out is not None and (stream.out_len > 0 or stream.body_ended) and (
                nghttp2.nghttp2_session_get_stream_remote_window_size(self.session, stream.stream_id) <= 0
                or nghttp2.nghttp2_session_get_remote_window_size(self.session) <= 0):
            stall_limit = ctx.timeout_request_body or ctx.keep_alive_timeout
            if stream.stalled_since == 0.0:
                stream.stalled_since = now
            elif now - stream.stalled_since > stall_limit:
                error_log.warning("HTTP/2 stream %d: the client's flow-control window stayed closed"
                                  " for %.0f s; resetting it", stream.stream_id, now - stream.stalled_since)
                stream._reset(nghttp2.NGHTTP2_CANCEL)
        else:
            stream.stalled_since = 0.0

    # the session -----------------------------------------------------------------------------

    cdef int _begin_headers(self, int32_t stream_id) except -1:
        cdef H2Stream stream = new_h2_stream(self, stream_id)
        self.streams[stream_id] = stream
        nghttp2.nghttp2_session_set_stream_user_data(self.session, stream_id, <void*>stream)
        return 0

    cdef int _on_frame_recv(self, int type, int flags, int32_t stream_id, int cat) except -1:
        cdef void* p = nghttp2.nghttp2_session_get_stream_user_data(self.session, stream_id)
        cdef H2Stream stream
        if p == NULL:
            return 0
        stream = <H2Stream>p
        if type == nghttp2.NGHTTP2_HEADERS and cat == nghttp2.NGHTTP2_HCAT_REQUEST:
            stream._head_complete()
            if flags & nghttp2.NGHTTP2_FLAG_END_STREAM:
                stream._message_complete()
            self._start(stream)
        elif flags & nghttp2.NGHTTP2_FLAG_END_STREAM:
            stream._message_complete()
        return 0

    cdef int _settings_received(self) except -1:
        """RFC 9113 6.9.2: a new SETTINGS_INITIAL_WINDOW_SIZE that takes a stream's window past
        2^31-1 is a connection error (FLOW_CONTROL_ERROR); nghttp2 resets the stream only."""
        cdef long long initial = nghttp2.nghttp2_session_get_remote_settings(
            self.session, nghttp2.NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE)
        if self.window_before + initial - self.initial_before > 0x7FFFFFFF:
            self.violation = nghttp2.NGHTTP2_FLOW_CONTROL_ERROR
            return nghttp2.NGHTTP2_ERR_CALLBACK_FAILURE
        return 0

    cdef int _on_stream_close(self, int32_t stream_id, unsigned int error_code) except -1:
        cdef H2Stream stream = self.streams.pop(stream_id, None)
        if stream is not None:
            stream._closed(error_code)
        if not self.streams:
            self.idle_since = self.ctx._clock()
        return 0

    cdef _start(self, H2Stream stream):
        cdef ServerContext ctx = self.ctx
        if not nghttp2.nghttp2_session_want_read(self.session):
            return      # the connection is ending (a GOAWAY is queued): no new app runs
        if stream.err_status:
            stream._send_error(stream.err_status)
            return
        if ctx.limit_concurrency and ctx.active_requests >= ctx.limit_concurrency:
            stream._send_error(503)
            return
        ctx.active_requests += 1
        ctx.total_requests += 1
        if M != NULL:
            M.in_flight += 1
        drive(stream, ctx.app, self.base_context)

    cdef _flush(self):
        """Write what nghttp2 has to send; close when the session is over."""
        cdef const uint8_t* data
        cdef ssize_t n
        cdef list chunks
        if self.in_recv or self.session == NULL or self.transport is None:
            return
        chunks = []
        self.in_recv = True     # no nested mem_send from what the callbacks do
        try:
            while True:
                n = nghttp2.nghttp2_session_mem_send(self.session, &data)
                if n <= 0:
                    break
                chunks.append(PyBytes_FromStringAndSize(<const char*>data, n))
        finally:
            self.in_recv = False
        if self.exc is not None:
            exc = self.exc
            self.exc = None
            error_log.error("Internal error on an HTTP/2 connection", exc_info=exc)
            self._close()
        if chunks and self.transport is not None and not self.transport.is_closing():
            data_out = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            if M != NULL:
                M.bytes_sent += PyBytes_GET_SIZE(data_out)
            self.transport.write(data_out)
        if n < 0 or (not nghttp2.nghttp2_session_want_read(self.session)
                     and not nghttp2.nghttp2_session_want_write(self.session)) or \
                (self.state == H2_GOAWAY and not self.streams):
            self._close()

    cdef _close(self):
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


cdef int _submit_fields(nghttp2.nghttp2_session* session, int32_t stream_id, list fields,
                        bint trailer, nghttp2.nghttp2_data_provider* provider=NULL) except -1:
    """Submit a response head (with `provider` for its body, or none) or trailer fields.
    nghttp2 copies the fields; the list keeps the bytes alive until then."""
    cdef Py_ssize_t n = len(fields), i
    cdef nghttp2.nghttp2_nv* nva = <nghttp2.nghttp2_nv*>PyMem_Malloc(n * sizeof(nghttp2.nghttp2_nv) + 1)
    cdef bytes name, value
    cdef int rv
    if nva == NULL:
        raise MemoryError()
    try:
        for i in range(n):
            name, value = fields[i]
            nva[i].name = <uint8_t*>PyBytes_AS_STRING(name)
            nva[i].namelen = PyBytes_GET_SIZE(name)
            nva[i].value = <uint8_t*>PyBytes_AS_STRING(value)
            nva[i].valuelen = PyBytes_GET_SIZE(value)
            nva[i].flags = nghttp2.NGHTTP2_NV_FLAG_NONE
        if trailer:
            rv = nghttp2.nghttp2_submit_trailer(session, stream_id, nva, n)
        else:
            rv = nghttp2.nghttp2_submit_response(session, stream_id, nva, n, provider)
    finally:
        PyMem_Free(nva)
    if rv != 0:
        raise RuntimeError("HTTP/2: cannot send the response: %s"
                           % nghttp2.nghttp2_strerror(rv).decode("ascii", "replace"))
    return 0
