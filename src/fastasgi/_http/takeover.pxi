# --- handing an HTTP/1.1 connection over to another protocol ---------------------------------------
#
# HttpProtocol serves every connection first; two things make it hand the transport on, and
# the connection is then the other protocol's (HttpProtocol goes to UPGRADED and forgets it):
# - a WebSocket handshake the app accepts (ServerContext.ws_upgrade makes the protocol);
# - HTTP/2 (h2.pxi): ALPN "h2" over TLS (connection_made), or on a cleartext listener first
#   bytes that are the HTTP/2 connection preface (data_received, through h2_probe).

cdef ws_takeover(HttpProtocol self, bytes leftover):
    """Hand the connection to the WebSocket protocol (ServerContext.ws_upgrade)."""
    cdef RequestCycle cycle = self.cycle
    cdef list corked = self.corked
    self.cycle = None
    self.ctx.connections.discard(self)
    self.corked = None
    if corked:
        self.transport.writelines(corked)
    try:
        proto = self.ctx.ws_upgrade(self.ctx, self.transport, cycle.scope, leftover)
    except BaseException as exc:
        error_log.error("WebSocket upgrade failed", exc_info=exc)
        self.ctx.connections.add(self)
        self.cycle = cycle
        self._send_error(500)
        return
    transport = self.transport
    transport.set_protocol(proto)
    if self.reading_paused:
        self.reading_paused = False
        transport.resume_reading()
    self.transport = None
    self._set_state(CONN_UPGRADED)
    if M != NULL:
        M.open_http -= 1
        M.open_websocket += 1
    proto.connection_made(transport)
    if leftover:
        proto.data_received(leftover)


cdef object h2_probe(HttpProtocol proto, bytes data):
    """The first bytes of a cleartext connection with HTTP/2 on: the connection preface hands
    the connection to HTTP/2 (None returned); anything else is HTTP/1.1 (returned to parse).
    A prefix of the preface is kept until the rest decides."""
    cdef Py_ssize_t n
    if proto.h2_probe is not None:
        data = proto.h2_probe + data
        proto.h2_probe = None
    n = min(PyBytes_GET_SIZE(data), H2_PREFACE_LEN)
    if memcmp(PyBytes_AS_STRING(data), PyBytes_AS_STRING(H2_PREFACE), n) != 0:
        proto.h2_undecided = False
        return data
    if n < H2_PREFACE_LEN:
        proto.h2_probe = data
        return None
    proto.h2_undecided = False
    h2_takeover(proto, data)
    return None


cdef h2_takeover(HttpProtocol proto, bytes data):
    """Serve proto's connection as HTTP/2 from now on; `data` is what it received so far."""
    cdef H2Protocol conn = H2Protocol(proto.ctx)
    cdef object transport = proto.transport
    proto.ctx.connections.discard(proto)
    proto.transport = None
    proto._set_state(CONN_UPGRADED)
    if M != NULL:
        M.open_http -= 1
        M.open_http2 += 1
    transport.set_protocol(conn)
    conn._take_over(transport, proto.scope_template, proto.base_context, data)
