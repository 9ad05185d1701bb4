# --- nghttp2 callbacks of the HTTP/2 connection (h2.pxi) ------------------------------------------
# Trampolines, as callbacks.pxi is for llhttp: the user data is the connection's H2Protocol
# (a stream's is its H2Stream); each calls the _on_<event> of the connection or the stream.
# No Python exception escapes into C: one is stored on the connection and reported to nghttp2
# as a callback failure; nghttp2 stops, and data_received logs it and ends the connection.

cdef int h2_on_begin_frame(nghttp2.nghttp2_session* session, const nghttp2.nghttp2_frame_hd* hd,
                           void* user_data) noexcept:
    cdef H2Protocol self = <H2Protocol>user_data
    cdef int t = hd.type
    if hd.length > <size_t>self.max_frame_size:
        # RFC 9113 4.2: larger than our SETTINGS_MAX_FRAME_SIZE. nghttp2 checks every frame
        # type but CONTINUATION.
        self.violation = nghttp2.NGHTTP2_FRAME_SIZE_ERROR
        return nghttp2.NGHTTP2_ERR_CALLBACK_FAILURE
    if t == nghttp2.NGHTTP2_HEADERS and hd.stream_id & 1 and \
            hd.stream_id <= nghttp2.nghttp2_session_get_last_proc_stream_id(session) and \
            nghttp2.nghttp2_session_get_stream_user_data(session, hd.stream_id) == NULL:
        # RFC 9113 5.1.1: a new stream's identifier must be greater than every one the client
        # used before; nghttp2 ignores a HEADERS that reuses or goes back, the RFC makes it a
        # connection error (a stream that is still open is found above: trailers)
        self.violation = nghttp2.NGHTTP2_PROTOCOL_ERROR
        return nghttp2.NGHTTP2_ERR_CALLBACK_FAILURE
    if (t == nghttp2.NGHTTP2_PING or t == nghttp2.NGHTTP2_SETTINGS) and hd.flags & nghttp2.NGHTTP2_FLAG_ACK:
        return 0
    if t == nghttp2.NGHTTP2_SETTINGS:
        self.initial_before = nghttp2.nghttp2_session_get_remote_settings(
            session, nghttp2.NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE)
        self.window_before = max_send_window(self)
    if t == nghttp2.NGHTTP2_PING or t == nghttp2.NGHTTP2_SETTINGS or t == nghttp2.NGHTTP2_PRIORITY \
            or t == nghttp2.NGHTTP2_RST_STREAM or (t == nghttp2.NGHTTP2_DATA and hd.length == 0
                                                   and not (hd.flags & nghttp2.NGHTTP2_FLAG_END_STREAM)):
        self.idle_frames += 1
        if self.idle_frames > H2_IDLE_FRAMES:
            self.flooded = True
            return nghttp2.NGHTTP2_ERR_CALLBACK_FAILURE
    return 0


cdef long long max_send_window(H2Protocol self) noexcept:
    """The largest window the client has given one of the streams (what the server may send)."""
    cdef long long largest = 0, window
    for stream_id in self.streams:
        window = nghttp2.nghttp2_session_get_stream_remote_window_size(self.session, stream_id)
        if window > largest:
            largest = window
    return largest


cdef int h2_on_begin_headers(nghttp2.nghttp2_session* session, const nghttp2.nghttp2_frame* frame,
                             void* user_data) noexcept:
    cdef H2Protocol self = <H2Protocol>user_data
    if frame.hd.type != nghttp2.NGHTTP2_HEADERS or frame.headers.cat != nghttp2.NGHTTP2_HCAT_REQUEST:
        return 0
    try:
        return self._begin_headers(frame.hd.stream_id)
    except BaseException as exc:
        self.exc = exc
        return nghttp2.NGHTTP2_ERR_CALLBACK_FAILURE


cdef int h2_on_header(nghttp2.nghttp2_session* session, const nghttp2.nghttp2_frame* frame,
                      const uint8_t* name, size_t namelen, const uint8_t* value, size_t valuelen,
                      uint8_t flags, void* user_data) noexcept:
    cdef void* stream
    if frame.hd.type != nghttp2.NGHTTP2_HEADERS or frame.headers.cat != nghttp2.NGHTTP2_HCAT_REQUEST:
        return 0        # request trailers: no ASGI event carries them (dropped, as HTTP/1.1's)
    stream = nghttp2.nghttp2_session_get_stream_user_data(session, frame.hd.stream_id)
    if stream == NULL:
        return 0
    try:
        return (<H2Stream>stream)._on_header(<const char*>name, namelen, <const char*>value, valuelen)
    except BaseException as exc:
        (<H2Protocol>user_data).exc = exc
        return nghttp2.NGHTTP2_ERR_CALLBACK_FAILURE


cdef int h2_on_frame_recv(nghttp2.nghttp2_session* session, const nghttp2.nghttp2_frame* frame,
                          void* user_data) noexcept:
    cdef H2Protocol self = <H2Protocol>user_data
    cdef int cat = -1
    if frame.hd.type == nghttp2.NGHTTP2_SETTINGS and not (frame.hd.flags & nghttp2.NGHTTP2_FLAG_ACK):
        return self._settings_received()
    if frame.hd.type != nghttp2.NGHTTP2_HEADERS and frame.hd.type != nghttp2.NGHTTP2_DATA:
        return 0
    if frame.hd.type == nghttp2.NGHTTP2_HEADERS:
        cat = frame.headers.cat
    try:
        return self._on_frame_recv(frame.hd.type, frame.hd.flags, frame.hd.stream_id, cat)
    except BaseException as exc:
        self.exc = exc
        return nghttp2.NGHTTP2_ERR_CALLBACK_FAILURE


cdef int h2_on_data_chunk(nghttp2.nghttp2_session* session, uint8_t flags, int32_t stream_id,
                          const uint8_t* data, size_t length, void* user_data) noexcept:
    cdef void* stream = nghttp2.nghttp2_session_get_stream_user_data(session, stream_id)
    if stream == NULL:
        nghttp2.nghttp2_session_consume(session, stream_id, length)
        return 0
    try:
        (<H2Stream>stream)._on_body(<const char*>data, length)
        return 0
    except BaseException as exc:
        (<H2Protocol>user_data).exc = exc
        return nghttp2.NGHTTP2_ERR_CALLBACK_FAILURE


cdef int h2_on_stream_close(nghttp2.nghttp2_session* session, int32_t stream_id,
                            uint32_t error_code, void* user_data) noexcept:
    cdef H2Protocol self = <H2Protocol>user_data
    try:
        return self._on_stream_close(stream_id, error_code)
    except BaseException as exc:
        self.exc = exc
        return nghttp2.NGHTTP2_ERR_CALLBACK_FAILURE


cdef int h2_on_frame_send(nghttp2.nghttp2_session* session, const nghttp2.nghttp2_frame* frame,
                          void* user_data) noexcept:
    cdef void* stream
    if (frame.hd.type != nghttp2.NGHTTP2_HEADERS and frame.hd.type != nghttp2.NGHTTP2_DATA) or \
            not (frame.hd.flags & nghttp2.NGHTTP2_FLAG_END_STREAM):
        return 0
    stream = nghttp2.nghttp2_session_get_stream_user_data(session, frame.hd.stream_id)
    if stream != NULL and (<H2Stream>stream).request == REQ_BODY:
        # RFC 9113 8.1: the response is complete and the request is not; the stream stays
        # half-closed and the rest of the body is dropped, within bounds (h2stream.pxi)
        try:
            (<H2Stream>stream)._discard()
        except BaseException as exc:
            (<H2Protocol>user_data).exc = exc
            return nghttp2.NGHTTP2_ERR_CALLBACK_FAILURE
    return 0


cdef ssize_t h2_read_body(nghttp2.nghttp2_session* session, int32_t stream_id, uint8_t* buf,
                          size_t length, uint32_t* data_flags, nghttp2.nghttp2_data_source* source,
                          void* user_data) noexcept:
    try:
        return (<H2Stream>source.ptr)._read_out(<char*>buf, length, data_flags)
    except BaseException as exc:
        (<H2Protocol>user_data).exc = exc
        return nghttp2.NGHTTP2_ERR_CALLBACK_FAILURE
