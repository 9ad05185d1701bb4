# --- permessage-deflate (RFC 7692) on zlib's C API, for WsCodec (ws.pxi) ----------------------
# The handshake negotiates the parameters (websocket.py); the codec gets them as
# (client_no_context_takeover, server_no_context_takeover, client_max_window_bits,
# server_max_window_bits, level, mem_level). Messages are raw DEFLATE (RFC 1951) streams cut
# at a sync flush whose 0x00 0x00 0xff 0xff tail is left off (RFC 7692 7.2.1); with context
# takeover, the sliding window carries over from message to message (7.1.1).

# zlib reserves windowBits 8 for raw streams (zlib 1.2.9 changelog: "Reject a window size of
# 256 bytes if not using the zlib wrapper"); the handshake never negotiates 8 for our side.
cdef int WS_MIN_WINDOW_BITS = 9
cdef int WS_MAX_WINDOW_BITS = 15
# the tail of a sync flush (RFC 7692 7.2.1)
cdef Py_ssize_t WS_FLUSH_TAIL = 4
# output room added per deflate/inflate call
cdef Py_ssize_t WS_Z_CHUNK = 16384
# the largest frame head, kept free in front of the compressed payload
cdef Py_ssize_t WS_MAX_HEAD = 10


cdef int ws_deflate_init(WsCodec c, bint client_no_context_takeover, bint server_no_context_takeover,
                         int client_max_window_bits, int server_max_window_bits,
                         int level, int mem_level) except -1:
    if not (8 <= client_max_window_bits <= WS_MAX_WINDOW_BITS
            and WS_MIN_WINDOW_BITS <= server_max_window_bits <= WS_MAX_WINDOW_BITS):
        raise ValueError("window bits out of range")
    memset(&c.z_in, 0, sizeof(z_stream))
    memset(&c.z_out, 0, sizeof(z_stream))
    # Inflating with a window at least as large as the client's is always correct, and 9 is the
    # smallest raw window zlib takes.
    if inflateInit2(&c.z_in, -max(client_max_window_bits, WS_MIN_WINDOW_BITS)) != Z_OK:
        raise MemoryError()
    c.z_in_ready = True
    if deflateInit2(&c.z_out, level, Z_DEFLATED, -server_max_window_bits, mem_level,
                    Z_DEFAULT_STRATEGY) != Z_OK:
        raise MemoryError()
    c.z_out_ready = True
    c.inflate_reset = client_no_context_takeover
    c.deflate_reset = server_no_context_takeover
    c.deflate = True
    return 0


cdef int ws_inflate(WsCodec c, const unsigned char* p, Py_ssize_t n, bint text,
                    list events) except -1:
    """Inflate ``n`` compressed bytes onto the message (c.msg), checking max_size and, for a
    text message, the UTF-8 of what comes out, as it comes out."""
    cdef z_stream* z = &c.z_in
    cdef Buf* b = &c.msg
    cdef Py_ssize_t before
    cdef Py_ssize_t room
    cdef Py_ssize_t limit
    cdef int rc
    z.next_in = p
    z.avail_in = <unsigned int>n
    while True:
        buf_reserve(b, WS_Z_CHUNK)
        room = b.cap - b.len
        before = b.len
        z.next_out = <unsigned char*>b.data + b.len
        z.avail_out = <unsigned int>room
        rc = inflate(z, Z_SYNC_FLUSH)
        b.len += room - z.avail_out
        # What this call produced is checked in byte order, so the first violation wins
        # wherever the input was cut: bad UTF-8 up to max_size, then max_size, then zlib's error.
        limit = b.len
        if c.max_size >= 0 and limit > c.max_size:
            limit = c.max_size if c.max_size > before else before
        if text and c._utf8(<const unsigned char*>b.data + before, limit - before) < 0:
            return c._fail(events, 1007, "invalid UTF-8 in a text message")
        if limit < b.len:
            return c._fail(events, 1009, "message too big")
        if rc == Z_STREAM_END:
            # a final block ends the stream; what follows starts a new one
            inflateReset(z)
            if z.avail_in:
                continue
        elif rc != Z_OK and rc != Z_BUF_ERROR:
            return c._fail(events, 1007, "invalid compressed data")
        if z.avail_out != 0 and (z.avail_in == 0 or rc != Z_OK):
            return 0


cdef bytes ws_deflate_frame(WsCodec c, int b0, const char* p, Py_ssize_t n):
    """A compressed data frame: RSV1 set (RFC 7692 6), the payload deflated with a sync flush
    and its tail cut (7.2.1), built in c.zout after room for the head."""
    cdef z_stream* z = &c.z_out
    cdef Buf* b = &c.zout
    cdef Py_ssize_t room
    cdef Py_ssize_t size
    cdef Py_ssize_t h
    cdef int rc
    b.len = WS_MAX_HEAD
    z.next_in = <const unsigned char*>p
    z.avail_in = <unsigned int>n
    while True:
        buf_reserve(b, WS_Z_CHUNK if n < WS_Z_CHUNK else n // 2 + WS_Z_CHUNK)
        room = b.cap - b.len
        z.next_out = <unsigned char*>b.data + b.len
        z.avail_out = <unsigned int>room
        rc = deflate(z, Z_SYNC_FLUSH)
        if rc != Z_OK and rc != Z_BUF_ERROR:
            raise RuntimeError("deflate failed")
        b.len += room - z.avail_out
        if z.avail_out != 0:
            break
    if c.deflate_reset:
        deflateReset(z)
    size = b.len - WS_MAX_HEAD - WS_FLUSH_TAIL
    if size < 0:
        # Nothing to flush (an empty message right after a flush): RFC 7692 7.2.3.6 sends an
        # empty stored block, the single byte 0x00
        b.data[WS_MAX_HEAD] = 0
        size = 1
    h = 2 if size < 126 else (4 if size < 65536 else 10)
    ws_head(<unsigned char*>b.data + WS_MAX_HEAD - h, h, b0 | 0x40, size)
    out = PyBytes_FromStringAndSize(b.data + WS_MAX_HEAD - h, h + size)
    if b.cap > WS_KEEP_BUFFER:
        buf_free(b)
    return out
