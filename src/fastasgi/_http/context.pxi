# --- ServerContext: what every connection of one server shares ---------------------------------

# The Server field's value, on both protocols (--no-server-header leaves it out)
cdef bytes SERVER_NAME = b"fastasgi"

cdef class ServerContext:

    def __init__(self, app, loop, *, str root_path="", bint server_header=True,
                 bint date_header=True, extra_headers=None,
                 Py_ssize_t max_header_bytes=_defaults.LIMIT_REQUEST_HEAD_SIZE,
                 Py_ssize_t max_headers=_defaults.LIMIT_REQUEST_FIELDS,
                 double keep_alive_timeout=_defaults.TIMEOUT_KEEP_ALIVE, state=None,
                 access_log=None, ws_upgrade=None, limit_concurrency=None, max_body_size=None,
                 timeout_request_head=_defaults.TIMEOUT_REQUEST_HEAD,
                 timeout_request_body=_defaults.TIMEOUT_REQUEST_BODY,
                 timeout_request=_defaults.TIMEOUT_REQUEST,
                 str header_map=_defaults.HEADER_MAP, bint http2=_defaults.HTTP2,
                 bint http2_only=False, bint reset_contextvars=False, tls_extension=None,
                 int h2_max_concurrent_streams=_defaults.HTTP2_MAX_CONCURRENT_STREAMS,
                 int h2_initial_stream_window_size=_defaults.HTTP2_INITIAL_STREAM_WINDOW_SIZE,
                 int h2_initial_connection_window_size=_defaults.HTTP2_INITIAL_CONNECTION_WINDOW_SIZE,
                 int h2_max_frame_size=_defaults.HTTP2_MAX_FRAME_SIZE,
                 h2_max_headers_size=None, clock=None):
        cdef list lines = []
        if header_map not in HEADER_MAPS:
            raise ValueError("header_map must be one of %s, not %r"
                             % (", ".join(HEADER_MAPS), header_map))
        self.app = app
        self.loop = loop
        self.state = {} if state is None else state
        self.connections = set()
        self.tasks = set()
        self.active_requests = 0
        self.total_requests = 0
        self.shutting_down = False
        self.root_path = root_path
        self.date_header = date_header
        self.server_field = (b"server", SERVER_NAME) if server_header else None
        self.server_line = b"server: " + SERVER_NAME + b"\r\n" if server_header else b""
        for name, value in extra_headers or ():
            name = name.encode("latin-1") if isinstance(name, str) else bytes(name)
            value = value.encode("latin-1") if isinstance(value, str) else bytes(value)
            check_header(name, value)
            lines.append(name + b": " + value + b"\r\n")
        self.extra_lines = b"".join(lines)
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers
        self.keep_alive_timeout = keep_alive_timeout
        self.access_log = access_log
        self.ws_upgrade = ws_upgrade
        self.limit_concurrency = limit_concurrency or 0
        self.max_body_size = -1 if max_body_size is None else max_body_size
        self.timeout_request_head = timeout_request_head or 0.0
        self.timeout_request_body = timeout_request_body or 0.0
        self.timeout_request = timeout_request or 0.0
        self.header_map = HEADER_MAPS[header_map]
        self.http2 = http2 or http2_only
        self.http2_only = http2_only
        self.reset_contextvars = reset_contextvars
        self.tls_extension = tls_extension
        # (the order H2Protocol reads them in); the header list's size defaults to the
        # HTTP/1.1 head limit, so one setting bounds a request head on both
        self.h2_settings = (h2_max_concurrent_streams, h2_initial_stream_window_size,
                            h2_initial_connection_window_size, h2_max_frame_size,
                            max_header_bytes if h2_max_headers_size is None else h2_max_headers_size)
        self.clock = clock
        self.loop_dict = _eager_dict(loop)
        self.task_kwargs = _task_kwargs(loop)
        self.now = self._clock()
        refresh_date(time_time())
        self._build_default_head()

    def tick(self):
        """Once a second, from the server: the shared Date line, then each HTTP connection
        applies its own timeouts (HttpProtocol._on_tick); no connection has a timer."""
        cdef double now = self._clock()
        self.now = now
        refresh_date(time_time())
        self._build_default_head()
        for conn in list(self.connections):
            if type(conn) is HttpProtocol:
                (<HttpProtocol>conn)._on_tick(now)
            elif type(conn) is H2Protocol:
                (<H2Protocol>conn)._on_tick(now)

    cdef _build_default_head(self):
        self.default_head = self.server_line + (date_line if self.date_header else EMPTY) \
            + self.extra_lines

    cdef inline double _clock(self) except? -1.0:
        """Monotonic seconds: the C clock, or the `clock` given (tests drive a fake one)."""
        if self.clock is None:
            return monotonic()
        return self.clock()

    def begin_shutdown(self):
        self.shutting_down = True
        for conn in list(self.connections):
            conn.shutdown()
