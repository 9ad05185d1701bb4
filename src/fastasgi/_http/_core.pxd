# Every cdef class of the compiled core, declared completely, and the state enums. The bodies
# are in the parts _core.pyx includes; the rules of each state machine are written at the top
# of the part that holds it (protocol.pxi, exchange.pxi, h2.pxi).

from libc.stdint cimport int32_t

from .llhttp cimport llhttp_t, llhttp_errno_t
from .nghttp2 cimport nghttp2_session


cdef struct Buf:
    # A growable C byte buffer, owned by one connection, reused request after request.
    char* data
    Py_ssize_t len
    Py_ssize_t cap


# The state of one HTTP/1.1 connection (protocol.pxi). Ordered: every state from CONN_CLOSING
# on means "no more parsing".
cdef enum ConnState:
    CONN_IDLE
    CONN_HEAD
    CONN_REQUEST
    CONN_CLOSING
    CONN_UPGRADED
    CONN_CLOSED
    CONN_STATES             # how many there are

# The response of one request (exchange.pxi). Ordered: from RESP_STREAMING on, bytes of this
# response are on the wire.
cdef enum RespState:
    RESP_NONE
    RESP_STARTED
    RESP_STREAMING
    RESP_DONE
    RESP_STATES

# The request message of one request as the app reads it (exchange.pxi). Ordered: from
# REQ_COMPLETE on, the whole message has arrived.
cdef enum ReqState:
    REQ_BODY
    REQ_DISCARD
    REQ_COMPLETE
    REQ_DELIVERED
    REQ_STATES

# The app coroutine of one request (driver.pxi).
cdef enum AppState:
    APP_PENDING
    APP_RUNNING
    APP_DONE

# The state of one HTTP/2 connection (h2.pxi). Ordered like ConnState.
cdef enum H2State:
    H2_OPEN
    H2_GOAWAY
    H2_CLOSED
    H2_STATES

# How a response body is delimited (wire.pxi, response_framing).
cpdef enum Framing:
    FRAMING_NONE            # 1xx, 204, 304: no body
    FRAMING_LENGTH          # Content-Length from the app
    FRAMING_ADD_LENGTH      # the whole body came in one message: we add Content-Length
    FRAMING_CHUNKED         # Transfer-Encoding: chunked from the app
    FRAMING_ADD_CHUNKED     # streamed to HTTP/1.1: we add Transfer-Encoding: chunked
    FRAMING_CLOSE           # streamed to HTTP/1.0: the body ends when the connection closes
    FRAMING_INVALID         # Content-Length and Transfer-Encoding together

# The form of a request-target (target.pxi, target_form).
cdef enum:
    TARGET_ORIGIN = 0       # "/path?query", and "*" for OPTIONS
    TARGET_ABSOLUTE = 1     # "http://authority/path?query"

# --header-map (parser.pxi)
cdef enum:
    HEADER_MAP_DROP
    HEADER_MAP_REFUSE
    HEADER_MAP_DANGEROUS


cdef class ServerContext:
    cdef readonly object app
    cdef readonly object loop
    cdef public dict state
    cdef readonly set connections           # HTTP and upgraded WebSocket protocols
    cdef readonly set tasks                 # asyncio Tasks of HTTP apps that suspended
    cdef public Py_ssize_t active_requests
    cdef public Py_ssize_t total_requests
    cdef public bint shutting_down
    cdef readonly str root_path
    cdef readonly bint date_header
    cdef readonly bytes server_line         # b"server: fastasgi\r\n" or b""
    cdef readonly tuple server_field        # (b"server", b"fastasgi") or None (HTTP/2)
    cdef readonly bytes extra_lines         # --header lines, prebuilt
    cdef bytes default_head                 # server_line, the Date line, extra_lines
    cdef readonly Py_ssize_t max_header_bytes
    cdef readonly Py_ssize_t max_headers
    cdef readonly double keep_alive_timeout
    cdef readonly object access_log         # callable or None
    cdef readonly object ws_upgrade         # callable or None
    cdef readonly Py_ssize_t limit_concurrency   # 0: no limit
    cdef readonly long long max_body_size        # -1: no limit
    cdef readonly double timeout_request_head    # 0: off
    cdef readonly double timeout_request_body    # 0: off
    cdef readonly double timeout_request         # 0: off
    cdef readonly int header_map            # HEADER_MAP_*
    cdef readonly bint http2                # h2c by its preface, h2 by ALPN (h2.pxi)
    cdef readonly bint http2_only           # every connection is HTTP/2 (--http h2)
    cdef readonly bint reset_contextvars    # each request starts from an empty Context
    cdef readonly object tls_extension      # ssl_object -> the ASGI tls extension dict, or None
    # HTTP/2: (max streams, stream window, connection window, max frame, max header list)
    cdef readonly tuple h2_settings
    cdef readonly object clock              # None: the C monotonic clock; else a callable
    cdef readonly double now                # the clock as of the last tick()
    cdef dict loop_dict                     # 3.10/3.11: the loop's __dict__, for eager Tasks (driver.pxi)
    cdef dict task_kwargs                   # the keywords of every app Task (driver.pxi)

    cdef inline double _clock(self) except? -1.0
    cdef _build_default_head(self)


cdef class RequestParser:
    cdef ServerContext ctx
    cdef llhttp_t parser
    cdef Buf head                 # the request-target, then the field line being parsed
    cdef Py_ssize_t url_len       # the request-target's bytes at the start of `head`
    cdef Py_ssize_t name_len      # the current field name's bytes after the target
    cdef list headers             # (name, value) pairs for the scope
    cdef int err_status           # the status a refusal found by a check answers with
    cdef Py_ssize_t field_count   # field lines of the head (or of the trailer section)
    cdef int host_count
    cdef int proto_len            # bytes of the protocol name ("HTTP") seen so far
    cdef long long chunk_ext_bytes
    cdef long long body_received
    cdef bint in_trailers         # the head is complete: fields now are trailer fields
    cdef bint expect_continue
    cdef bint websocket_upgrade
    cdef bint te_trailers         # the request's TE names "trailers" (RFC 9110 10.1.4)
    # stream positions (see the top of parser.pxi)
    cdef const char* feed_base
    cdef long long feed_pos
    cdef long long stream_pos     # bytes llhttp has taken so far
    cdef Py_ssize_t consumed      # bytes the last execute() took
    cdef long long head_start     # position of the request line (or trailer section); -1
    cdef char before[2]           # the two bytes of the stream before feed_base

    cdef llhttp_errno_t execute(self, const char* data, Py_ssize_t n)
    cdef int error_status(self, llhttp_errno_t err) noexcept
    cdef long long _pos(self, const char* at) noexcept
    cdef char _byte_before(self, const char* at, int k) noexcept
    cdef int _refuse(self, int status) noexcept
    cdef inline int _on_message_begin(self) noexcept
    cdef int _on_url(self, const char* at, size_t n) noexcept
    cdef int _on_protocol(self, const char* at, size_t n) noexcept
    cdef int _on_field_name(self, const char* at, size_t n) noexcept
    cdef int _on_field_bytes(self, const char* at, size_t n) noexcept
    cdef int _on_header_value_complete(self) except -1
    cdef int _on_headers_complete(self) except -1
    cdef _use_target_authority(self)
    cdef dict scope_so_far(self, dict template, str root, Buf* scratch)
    cdef int _on_chunk_extension(self, size_t n) noexcept
    cdef int _on_body(self, size_t n) except -1


cdef class HttpProtocol:
    cdef ServerContext ctx
    cdef object loop
    cdef object transport
    cdef RequestParser parser
    cdef Buf out                  # scratch for response heads and error responses
    cdef ConnState state
    cdef object exc               # exception raised inside an llhttp callback

    # per-connection scope pieces, computed once in connection_made
    cdef dict scope_template
    cdef object base_context      # the context every request starts from a copy of (driver.pxi)
    cdef dict extensions          # scope["extensions"] of its requests (exchange.pxi)
    cdef dict extensions_trailers # the same with http.response.trailers (TE: trailers)

    cdef RequestCycle cycle       # the one request in progress, or None
    cdef list corked              # writes held back while _parse runs, flushed at its end
    cdef Py_ssize_t corked_size
    cdef bytes pending            # bytes received but not parsed while parse_paused

    # flow control
    cdef bint parse_paused        # stopped at a message boundary until `cycle` responds
    cdef bint reading_paused      # transport.pause_reading() is in force
    cdef bint body_paused         # the app has not taken HIGH_WATER bytes of body
    cdef bint writing_paused      # the transport asked us to stop writing
    cdef object drain_waiter      # send() waits on it while writing_paused
    # keep-alive permission and the peer
    cdef bint keep_alive_allowed  # false once the server shuts down
    cdef bint eof                 # the client half-closed its side
    cdef bint served              # at least one request head was received
    cdef bint h2_undecided        # cleartext with HTTP/2 on: the first bytes may be its preface
    cdef bytes h2_probe           # the first bytes, while they are a prefix of the preface
    # when the connection went idle (the clock), when the head began and when body bytes
    # last came (the tick's time: those timeouts are exact to within a tick)
    cdef double idle_since
    cdef double head_started
    cdef double body_activity
    cdef double request_started

    cdef inline int _set_state(self, ConnState new) except -1
    cdef int _on_message_begin(self) except -1
    cdef int _on_headers_complete(self) except -1
    cdef int _on_body(self, const char* at, size_t n) except -1
    cdef int _on_message_complete(self) except -1
    cdef _on_tick(self, double now)
    cdef _parse(self, bytes data)
    cdef _start_cycle(self, RequestCycle cycle)
    cdef _cycle_done(self, RequestCycle cycle)
    cdef _update_reading(self)
    cdef _unpause_parsing(self)
    cdef _write(self, bytes data)
    cdef _uncork(self)
    cdef _close(self)
    cdef _send_error(self, int status)
    cdef _log_rejected_head(self, int status, Py_ssize_t nbytes)


cdef class Exchange:
    # One request and its response as the app sees them (exchange.pxi); what the driver reads
    # and writes of a request (driver.pxi)
    cdef public dict scope
    cdef object task                 # the app's asyncio.Task while it is suspended, else None
    cdef AppState app_state
    cdef ServerContext ctx
    cdef object loop
    cdef ReqState request
    cdef RespState response
    # request side
    cdef object body                 # bytes, or a list of bytes when several are buffered
    cdef Py_ssize_t body_len
    cdef object receive_waiter       # a future, or a list of them (driver.pxi)
    cdef bint disconnected           # the connection or stream is gone (or the exchange was cut)
    # response side
    cdef double t0                   # monotonic() at the head's end (access log or metrics on)
    cdef int m_protocol              # the metrics' protocol index (METRIC_PROTOCOLS)
    cdef int m_method                # and method index (METRIC_METHODS)
    cdef bint is_head
    cdef int status
    cdef object resp_headers
    cdef bint trailers_ok            # the protocol carries http.response.trailers
    cdef bint trailers               # and this response's trailers follow its body
    cdef list trailer_fields
    cdef bint body_ended             # the last body message is sent
    cdef long long expected_length   # -1: not declared
    cdef long long sent_length

    cdef inline int _set_request(self, ReqState new) except -1
    cdef inline int _set_response(self, RespState new) except -1
    cdef int _buffer(self, const char* at, size_t n) except -1
    cdef _message_complete(self)
    cdef _connection_lost(self)
    cdef _wake(self)
    cdef object _take_body(self)
    cdef int _body_taken(self, Py_ssize_t n) except -1
    cdef int _before_wait(self) except -1
    cdef _send_body(self, bytes body, bint more)
    cdef _send_trailers(self)
    cdef _send_early_hint(self, list links)
    cdef object _send_wait(self)
    cdef object _send_file(self, dict m, bint by_path)
    cdef int _scan_headers(self) except -1
    cdef _response_done(self)
    cdef _account(self, long long nbytes)
    cdef _send_error(self, int status)
    cdef _abort(self, int why)
    cdef bint _client_left(self) except -1
    cdef _time_out(self, double seconds)
    cdef _app_done(self)
    cdef _app_returned(self, object result)
    cdef _app_failed(self, object exc)


cdef class RequestCycle(Exchange):
    # HTTP/1.1's wire effects (cycle.pxi)
    cdef HttpProtocol proto
    cdef Framing framing
    cdef bint expect_continue        # a 100 Continue is owed when the app first waits
    cdef bint peer_eof               # the client half-closed after sending this request
    cdef bint http10
    cdef bint keep_alive

    cdef _on_body(self, const char* at, size_t n)
    cdef _build_head(self, bytes body, bint final)
    cdef _response_complete(self)


cdef class H2Protocol:
    cdef ServerContext ctx
    cdef object loop
    cdef object transport
    cdef nghttp2_session* session
    cdef H2State state
    cdef dict streams               # stream id -> H2Stream: the references nghttp2 points to
    cdef dict scope_template
    cdef object base_context        # as HttpProtocol's (driver.pxi)
    cdef list default_nv            # (name, value) of the server's own response fields
    cdef object exc                 # exception raised inside an nghttp2 callback
    cdef bint in_recv               # inside data_received: output is flushed at its end
    cdef bint writing_paused
    cdef bint reading_paused
    cdef double idle_since          # when the last stream ended (the clock)
    cdef Buf scratch                # percent-decoding of paths
    cdef int idle_frames            # frames that advance no request, since the last tick
    cdef bint flooded               # more than H2_IDLE_FRAMES of them in a second
    cdef unsigned int violation     # a connection error nghttp2 lets through: its GOAWAY code
    cdef int max_frame_size         # our SETTINGS_MAX_FRAME_SIZE
    # a client SETTINGS frame being processed: its INITIAL_WINDOW_SIZE before, and the largest
    # window of a response stream then (RFC 9113 6.9.2, see _settings_received)
    cdef long long initial_before
    cdef long long window_before

    cdef inline int _set_state(self, H2State new) except -1
    cdef _flush(self)
    cdef _close(self)
    cdef _on_tick(self, double now)
    cdef _stream_timeouts(self, H2Stream stream, double now)
    cdef _release_senders(self)
    cdef int _begin_headers(self, int32_t stream_id) except -1
    cdef int _on_frame_recv(self, int type, int flags, int32_t stream_id, int cat) except -1
    cdef int _on_stream_close(self, int32_t stream_id, unsigned int error_code) except -1
    cdef int _settings_received(self) except -1
    cdef _start(self, H2Stream stream)


cdef class H2Stream(Exchange):
    # HTTP/2's wire effects (h2stream.pxi)
    cdef H2Protocol conn
    cdef int32_t stream_id
    # the request head, while it arrives
    cdef list headers
    cdef list cookies
    cdef bytes method
    cdef bytes path
    cdef bytes scheme
    cdef bytes authority
    cdef Py_ssize_t head_bytes
    cdef int err_status             # a refusal found in the head (400, 431): answered, no app
    # the request body
    cdef long long body_received
    cdef long long discarded        # body bytes dropped after the response (DISCARD)
    cdef double discard_since       # the tick's time the request went to DISCARD
    cdef double started             # the tick's time the head began, then when it was complete
    cdef double body_activity       # the tick's time of the last body bytes
    # the response
    cdef list out                   # body bytes nghttp2 has not taken yet
    cdef Py_ssize_t out_off         # bytes of out[0] already taken
    cdef Py_ssize_t out_len         # bytes in out, less out_off
    cdef bint deferred              # nghttp2 waits for body bytes (resume_data when they come)
    cdef double stalled_since       # body waits on the client's flow-control window; 0: not
    cdef object send_waiter

    cdef int _on_header(self, const char* name, size_t nl, const char* value, size_t vl) except -1
    cdef _head_complete(self)
    cdef _on_body(self, const char* data, size_t n)
    cdef _discard(self)
    cdef _stop_upload(self)
    cdef _closed(self, unsigned int error_code)
    cdef _submit_head(self, bint has_body, long long whole)
    cdef _add_own_fields(self, list fields, int found)
    cdef Py_ssize_t _read_out(self, char* buf, size_t length, unsigned int* flags) except -1
    cdef _reset(self, unsigned int code)


cdef class FileSource:
    # the bytes of a file body (filesend.pxi)
    cdef int fd                      # -1 once closed
    cdef bint owned                  # opened by the server (Path Send): closed by it
    cdef long long offset            # where the next byte is read
    cdef long long remaining         # bytes still to send

    cdef close(self)


# zlib's C API (zlib.h), what permessage-deflate (wsdeflate.pxi) uses of it.
cdef extern from "zlib.h" nogil:
    ctypedef struct z_stream:
        const unsigned char* next_in
        unsigned int avail_in
        unsigned char* next_out
        unsigned int avail_out
        const char* msg
    int Z_OK
    int Z_STREAM_END
    int Z_BUF_ERROR
    int Z_NO_FLUSH
    int Z_SYNC_FLUSH
    int Z_DEFLATED
    int Z_DEFAULT_STRATEGY
    int Z_DEFAULT_COMPRESSION
    int inflateInit2(z_stream* strm, int windowBits)
    int inflate(z_stream* strm, int flush)
    int inflateReset(z_stream* strm)
    int inflateEnd(z_stream* strm)
    int deflateInit2(z_stream* strm, int level, int method, int windowBits, int memLevel, int strategy)
    int deflate(z_stream* strm, int flush)
    int deflateReset(z_stream* strm)
    int deflateEnd(z_stream* strm)


# Where the frame parser is (ws.pxi): in a frame head, in its payload, or done (after a close
# frame or a protocol error nothing more is read).
cdef enum WsPhase:
    WS_HEAD
    WS_PAYLOAD
    WS_DONE


cdef class WsCodec:
    # RFC 6455 frames of one server-side connection: parse, unmask, validate, reassemble;
    # build; permessage-deflate (RFC 7692) when negotiated.
    cdef WsPhase phase
    cdef unsigned char head[14]         # the frame head being read (RFC 6455 5.2)
    cdef int head_len
    cdef int head_need                  # 2 until the length byte says more
    cdef int opcode                     # of the frame being read
    cdef bint fin
    cdef unsigned char mask[4]
    cdef unsigned long long remaining   # payload bytes of this frame still to come
    cdef unsigned int mask_pos          # payload bytes of this frame already unmasked
    cdef int msg_opcode                 # 0: no data message in progress; else TEXT or BINARY
    cdef bint msg_compressed            # RSV1 on its first frame (RFC 7692 6)
    cdef Buf msg                        # the data message so far, unmasked (and inflated)
    cdef Buf ctl                        # the control frame's payload
    cdef Buf zin                        # compressed payload, unmasked, before inflate
    cdef Buf zout                       # frames being built with deflate
    cdef long long max_size             # -1: no limit
    # incremental UTF-8 (RFC 3629 4): continuation bytes still needed, and the range the next
    # one must fall in
    cdef int u_need
    cdef unsigned char u_lo
    cdef unsigned char u_hi
    # permessage-deflate
    cdef readonly bint deflate
    cdef bint inflate_reset             # the client's no_context_takeover
    cdef bint deflate_reset             # ours
    cdef bint z_in_ready
    cdef bint z_out_ready
    cdef z_stream z_in
    cdef z_stream z_out

    cdef int _fail(self, list events, int code, str reason) except -1
    cdef int _on_start(self, list events) except -1
    cdef int _on_head(self, list events) except -1
    cdef int _on_payload(self, const unsigned char* p, Py_ssize_t n, list events) except -1
    cdef int _on_frame_end(self, list events) except -1
    cdef int _on_close(self, list events) except -1
    cdef int _utf8(self, const unsigned char* p, Py_ssize_t n) noexcept nogil
    cdef bytes _frame(self, int b0, const char* p, Py_ssize_t n)
    cpdef list feed(self, bytes data)
    cpdef bytes message(self, data)


cdef class WsConn:
    # The per-message path of an upgraded websocket (wsconn.pxi); fastasgi.websocket's
    # WebSocketProtocol subclasses it. Public: the Python layer reads and sets them.
    cdef public int state                   # WsState
    cdef public object transport
    cdef public object loop
    cdef public WsCodec codec
    cdef public object _queue               # collections.deque of messages for the app
    cdef public list _waiters               # the futures of the receive() calls that wait
    cdef public object _disconnect          # the websocket.disconnect message, once queued
    cdef public object _failure             # a close waiting for the app (see websocket.py)
    cdef public list _pending               # frame bytes not written yet
    cdef public Py_ssize_t _pending_size
    cdef public bint _read_paused
    cdef public bint _write_paused
    cdef public bint _write_scheduled
    cdef public bint _app_busy              # the app holds a message it has not answered
    cdef public long long _in_count         # messages not counted into the metrics yet
    cdef public long long _out_count
    cdef public Py_ssize_t max_queue        # --ws-max-queue: reading pauses here
    cdef public Py_ssize_t resume_at        # and resumes here

    cdef int _deliver(self, list events) except -1
    cdef int _message(self, dict message) except -1
    cdef bint wake_one(self) except -1
    cdef int send_message(self, object message) except -1
    cdef int write(self, bytes data) except -1
    cdef int flush(self) except -1
    cdef int pause_read(self) except -1
    cdef int resume_read(self) except -1
