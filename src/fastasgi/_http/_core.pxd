# Declarations of the compiled hot path; bodies are in _core.pyx (STYLE.md 1).

from .llhttp cimport llhttp_t, llhttp_settings_t, llhttp_errno_t


cdef struct Buf:
    # A growable C byte buffer, owned by one connection, reused request after request.
    char* data
    Py_ssize_t len
    Py_ssize_t cap


cdef class ServerContext:
    cdef readonly object app
    cdef readonly object loop
    cdef public dict state
    cdef readonly set connections
    cdef readonly set tasks                  # asyncio Tasks of HTTP apps that suspended
    cdef public Py_ssize_t active_requests
    cdef public Py_ssize_t total_requests
    cdef public bint shutting_down
    cdef readonly str root_path
    cdef readonly bint server_header
    cdef readonly bint date_header
    cdef readonly bytes server_line         # b"server: fastasgi\r\n" or b""
    cdef readonly bytes extra_lines         # --header lines, prebuilt
    cdef readonly Py_ssize_t max_header_bytes
    cdef readonly Py_ssize_t max_headers
    cdef readonly double keep_alive_timeout
    cdef readonly object access_log          # callable or None
    cdef readonly object ws_upgrade          # callable or None
    cdef readonly Py_ssize_t limit_concurrency   # 0: no limit
    cdef readonly long long max_body_size         # -1: no limit
    cdef readonly double timeout_request_head    # 0: off
    cdef readonly double timeout_request_body    # 0: off
    cdef readonly double now                 # loop.time() as of the last tick()
    cdef readonly int header_map             # HEADER_MAP_DROP / _REFUSE / _DANGEROUS


cdef class HttpProtocol:
    cdef ServerContext ctx
    cdef object loop
    cdef object transport
    cdef llhttp_t parser
    cdef Buf head                 # request line + header bytes of the message being parsed
    cdef Buf out                  # scratch for response heads

    # per-connection scope pieces, computed once in connection_made
    cdef dict scope_template
    cdef str scheme

    # parse state of the message being received (see the state rules in _core.pyx)
    cdef Py_ssize_t url_len       # the request-target's bytes at the start of `head`
    cdef Py_ssize_t name_len      # the current field name's bytes after the target
    cdef bint in_head             # a request head has begun and is not complete
    cdef list headers
    cdef int err_status           # the status a refusal found by a callback answers with
    cdef Py_ssize_t field_count   # field lines of the head (or of the trailer section)
    cdef int host_count
    cdef int proto_len            # bytes of the protocol name ("HTTP") seen so far
    cdef long long chunk_ext_bytes
    cdef bint expect_continue
    cdef bint is_websocket_upgrade
    cdef long long body_received

    cdef RequestCycle cycle       # the one request in progress, or None
    cdef list corked              # writes held back while _parse runs, flushed at its end
    cdef Py_ssize_t corked_size
    cdef bint parse_paused        # stopped at a message boundary until `cycle` responds
    cdef bytes pending            # bytes received but not parsed while parse_paused
    cdef bint reading_paused
    cdef bint body_paused         # reading paused because the app has not taken the body
    cdef bint writing_paused
    cdef object drain_waiter
    cdef bint closing
    cdef bint eof                 # the client half-closed its side
    cdef bint served              # at least one request head was received
    cdef bint keep_alive_allowed  # false once we decided to close after this response
    cdef double idle_since        # ctx.now when the connection went idle
    cdef double head_started      # ctx.now when the current request head began
    cdef double body_activity     # ctx.now when request body bytes last arrived
    cdef object exc               # exception raised inside an llhttp callback
    # Stream positions: feed_base is where the buffer of the running llhttp_execute starts
    # and feed_pos its offset in the connection's byte stream, so a pointer an llhttp
    # callback gets has the position feed_pos + (at - feed_base) (see _pos).
    cdef const char* feed_base
    cdef long long feed_pos
    cdef long long stream_pos     # bytes handed to llhttp so far
    cdef long long head_start     # position of the request line (or trailer section); -1
    cdef long long line_mark      # position just past the last request-line token seen

    cdef inline long long _pos(self, const char* at) noexcept
    cdef int _on_message_begin(self) except -1
    cdef int _on_method(self, const char* at, size_t n) except -1
    cdef int _on_url(self, const char* at, size_t n) except -1
    cdef int _on_protocol(self, const char* at, size_t n) except -1
    cdef int _on_field_name(self, const char* at, size_t n) except -1
    cdef int _on_field_bytes(self, const char* at, size_t n) except -1
    cdef int _on_chunk_extension(self, size_t n) except -1
    cdef int _on_header_value_complete(self) except -1
    cdef int _on_headers_complete(self) except -1
    cdef int _on_body(self, const char* at, size_t length) except -1
    cdef int _on_message_complete(self) except -1

    cdef int _check_target(self) except -1
    cdef _use_target_authority(self)
    cdef _fill_path(self, dict scope)
    cdef int _error_status(self, llhttp_errno_t err)

    cdef _parse(self, bytes data)
    cdef _start_cycle(self, RequestCycle cycle)
    cdef _cycle_done(self, RequestCycle cycle)
    cdef _update_reading(self)
    cdef _unpause_parsing(self)
    cdef _write(self, bytes data)
    cdef _uncork(self)
    cdef _close(self)
    cdef _send_error(self, int status, str reason=*)
    cdef _log_access(self, RequestCycle cycle, long long nbytes)
    cdef _log_rejected_head(self, int status, Py_ssize_t nbytes)
    cdef _upgrade(self, bytes leftover)


cdef class RequestCycle:
    cdef HttpProtocol proto
    cdef public dict scope
    cdef object task

    # request body
    cdef object body                 # bytes, or list of bytes when several are buffered
    cdef Py_ssize_t body_len
    cdef bint body_complete
    cdef bint body_discard
    cdef object receive_waiter
    cdef bint expect_continue
    cdef bint body_delivered          # the final (more_body False) message was returned
    cdef bint disconnected
    cdef bint peer_eof                # the client half-closed after sending this request
    cdef bint running                 # the app coroutine has been started and not finished

    # response
    cdef bint is_head
    cdef bint http10
    cdef bint keep_alive
    cdef bint response_started
    cdef bint head_sent
    cdef bint response_complete
    cdef bint chunked
    cdef bint no_body
    cdef int status
    cdef object resp_headers
    cdef long long expected_length   # -1: not declared
    cdef long long sent_length
    cdef double start_time

    cdef _body_chunk(self, bytes chunk)
    cdef _message_complete(self)
    cdef _connection_lost(self)
    cdef _wake(self)
    cdef object _take_body(self)
    cdef _send_body(self, bytes body, bint more)
    cdef _build_head(self, object body_obj, bint final)
    cdef _response_complete(self)
    cdef _run(self, object app)
    cdef _app_returned(self, object result)
    cdef _app_failed(self, object exc)
