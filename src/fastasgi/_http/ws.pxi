# --- the WebSocket frame codec (RFC 6455 5, RFC 7692) -----------------------------------------
# WsCodec turns the bytes a client sends into whole messages and control frames, and messages
# into frames. It decides nothing about the connection: websocket.py answers pings, closes and
# failures. feed() returns, in wire order, what the bytes completed:
#
# - a str (a text message) or bytes (a binary message), reassembled from its fragments;
# - (OP_PING, payload), (OP_PONG, payload), (OP_CLOSE, code, reason): a control frame, code
#   1005 when the close frame had no payload (RFC 6455 7.1.5);
# - (OP_ERROR, code, reason): the bytes broke a rule; 1002 (protocol), 1007 (not UTF-8, or a
#   bad compressed payload) or 1009 (over max_size) (RFC 6455 7.4.1).
#
# The rules, checked as soon as the bytes that break them arrive, so the messages before a bad
# frame are all returned ahead of its OP_ERROR, and an invalid UTF-8 byte fails the message at
# once, not when the message ends (RFC 6455 8.1):
# - RSV2 and RSV3 are never set; RSV1 only on the first frame of a data message with
#   permessage-deflate negotiated (RFC 6455 5.2, RFC 7692 6);
# - opcodes 3-7 and 11-15 are reserved (5.2); control frames have FIN and at most 125 payload
#   bytes (5.5); a continuation needs a message in progress, a new data frame needs none (5.4);
# - every client frame is masked (5.3); a 64-bit length has its top bit clear (5.2);
# - a close payload is empty or a code (7.4) and a UTF-8 reason (5.5.1).
# After a close frame or an error the codec is done: later bytes are ignored (RFC 6455 5.5.1:
# nothing follows a close frame; 7.1.7: a failed connection reads nothing more).

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.unicode cimport PyUnicode_AsUTF8AndSize

# The opcodes (RFC 6455 5.2) as C constants, for the codec's own comparisons (a module-level
# Python int would be a dict lookup and an object compare on every frame), and under their
# Python names for the websocket layer.
cdef enum:
    OP_CONT = 0x0
    OP_TEXT = 0x1
    OP_BINARY = 0x2
    OP_CLOSE = 0x8
    OP_PING = 0x9
    OP_PONG = 0xA
    # not an opcode: the kind of feed()'s protocol-error event
    OP_ERROR = -1

WS_CONT = OP_CONT
WS_TEXT = OP_TEXT
WS_BINARY = OP_BINARY
WS_CLOSE = OP_CLOSE
WS_PING = OP_PING
WS_PONG = OP_PONG
WS_ERROR = OP_ERROR

# RFC 6455 5.5: a control frame's payload is at most 125 bytes
cdef Py_ssize_t WS_MAX_CONTROL = 125
# a frame head is 2 bytes, 2 or 8 of extended length, 4 of masking key (RFC 6455 5.2)
cdef int WS_HEAD_BASE = 2
cdef int WS_MASK_LEN = 4
# the message buffer keeps its memory between messages up to this size, and frees it above
cdef Py_ssize_t WS_KEEP_BUFFER = 262144


cdef inline bint ws_close_code_ok(int code) noexcept nogil:
    # RFC 6455 7.4.1 and the IANA registry (11.7): 1000-1003 and 1007-1014 are defined; 1004 is
    # reserved, 1005, 1006 and 1015 are never sent; 3000-4999 belong to libraries and apps.
    if 1000 <= code <= 1003 or 1007 <= code <= 1014:
        return True
    return 3000 <= code <= 4999


cdef void ws_unmask(unsigned char* p, Py_ssize_t n, const unsigned char* key,
                    unsigned int pos) noexcept nogil:
    """XOR ``n`` bytes in place with the masking key, starting at key byte ``pos % 4``
    (RFC 6455 5.3), eight bytes at a time."""
    cdef unsigned char k8[8]
    cdef uint64_t k64
    cdef uint64_t w
    cdef Py_ssize_t i = 0
    cdef int j
    for j in range(8):
        k8[j] = key[(pos + j) & 3]
    memcpy(&k64, k8, 8)
    while i + 8 <= n:
        memcpy(&w, p + i, 8)
        w ^= k64
        memcpy(p + i, &w, 8)
        i += 8
    while i < n:
        p[i] ^= k8[i & 7]
        i += 1


@cython.final
cdef class WsCodec:

    def __cinit__(self):
        self.phase = WS_HEAD
        self.head_need = WS_HEAD_BASE
        buf_init(&self.msg)
        buf_init(&self.ctl)
        buf_init(&self.zin)
        buf_init(&self.zout)
        self.u_lo = 0x80
        self.u_hi = 0xBF

    def __init__(self, max_size=None, tuple deflate=None):
        self.max_size = -1 if max_size is None else max_size
        if deflate is not None:
            (client_no_ctx, server_no_ctx, client_bits, server_bits, level, mem_level) = deflate
            ws_deflate_init(self, client_no_ctx, server_no_ctx, client_bits, server_bits, level,
                            mem_level)

    def __dealloc__(self):
        buf_free(&self.msg)
        buf_free(&self.ctl)
        buf_free(&self.zin)
        buf_free(&self.zout)
        if self.z_in_ready:
            inflateEnd(&self.z_in)
        if self.z_out_ready:
            deflateEnd(&self.z_out)

    # -- parsing

    cpdef list feed(self, bytes data):
        cdef list events = []
        cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(data)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
        cdef Py_ssize_t i = 0
        cdef Py_ssize_t take
        while i < n and self.phase != WS_DONE:
            if self.phase == WS_HEAD:
                while self.head_len < self.head_need and i < n:
                    self.head[self.head_len] = p[i]
                    self.head_len += 1
                    i += 1
                    if self.head_len == WS_HEAD_BASE:
                        self._on_start(events)
                        if self.phase == WS_DONE:
                            return events
                if self.head_len < self.head_need:
                    break
                self._on_head(events)
                if self.phase == WS_PAYLOAD and self.remaining == 0:
                    self._on_frame_end(events)
            else:
                take = n - i
                if <unsigned long long>take > self.remaining:
                    take = <Py_ssize_t>self.remaining
                self._on_payload(p + i, take, events)
                i += take
                self.mask_pos += <unsigned int>take
                self.remaining -= <unsigned long long>take
                if self.remaining == 0 and self.phase == WS_PAYLOAD:
                    self._on_frame_end(events)
        return events

    cdef int _fail(self, list events, int code, str reason) except -1:
        self.phase = WS_DONE
        events.append((OP_ERROR, code, reason))
        return 0

    cdef int _on_start(self, list events) except -1:
        """The first two bytes of a frame head: every rule they carry, then the head's size."""
        cdef int b0 = self.head[0]
        cdef int b1 = self.head[1]
        cdef int opcode = b0 & 0x0F
        cdef int length = b1 & 0x7F
        self.fin = (b0 & 0x80) != 0
        self.opcode = opcode
        if b0 & 0x30:
            return self._fail(events, 1002, "reserved bits must be 0")
        if b0 & 0x40 and not (self.deflate and (opcode == OP_TEXT or opcode == OP_BINARY)):
            # RFC 7692 6: RSV1 marks a compressed message, on its first frame only
            return self._fail(events, 1002, "reserved bits must be 0")
        if opcode >= OP_CLOSE:
            if opcode > OP_PONG:
                return self._fail(events, 1002, "invalid opcode")
            if not self.fin:
                return self._fail(events, 1002, "fragmented control frame")
            if length > WS_MAX_CONTROL:
                return self._fail(events, 1002, "control frame too long")
        elif opcode == OP_CONT:
            if self.msg_opcode == 0:
                return self._fail(events, 1002, "unexpected continuation frame")
        elif opcode == OP_TEXT or opcode == OP_BINARY:
            if self.msg_opcode != 0:
                return self._fail(events, 1002, "expected a continuation frame")
        else:
            return self._fail(events, 1002, "invalid opcode")
        if not b1 & 0x80:
            return self._fail(events, 1002, "incorrect masking")
        self.head_need = WS_HEAD_BASE + WS_MASK_LEN
        if length == 126:
            self.head_need += 2
        elif length == 127:
            self.head_need += 8
        return 0

    cdef int _on_head(self, list events) except -1:
        cdef unsigned long long length = self.head[1] & 0x7F
        cdef int at = WS_HEAD_BASE
        cdef int k
        if length == 126:
            length = (<unsigned long long>self.head[2] << 8) | self.head[3]
            at += 2
        elif length == 127:
            length = 0
            for k in range(8):
                length = (length << 8) | self.head[2 + k]
            at += 8
            if length >> 63:
                return self._fail(events, 1002, "frame length has its most significant bit set")
        memcpy(self.mask, &self.head[at], WS_MASK_LEN)
        self.head_len = 0
        self.head_need = WS_HEAD_BASE
        self.remaining = length
        self.mask_pos = 0
        if self.opcode >= OP_CLOSE:
            self.ctl.len = 0
        else:
            if self.opcode != OP_CONT:
                self.msg_opcode = self.opcode
                self.msg_compressed = (self.head[0] & 0x40) != 0
                self.msg.len = 0
                self.u_need = 0
            if (not self.msg_compressed and self.max_size >= 0
                    and <unsigned long long>self.msg.len + length > <unsigned long long>self.max_size):
                return self._fail(events, 1009, "message too big")
        self.phase = WS_PAYLOAD
        return 0

    cdef int _on_payload(self, const unsigned char* p, Py_ssize_t n, list events) except -1:
        cdef Buf* b
        cdef Py_ssize_t start
        if self.opcode >= OP_CLOSE:
            b = &self.ctl
        elif self.msg_compressed:
            b = &self.zin
            b.len = 0
        else:
            b = &self.msg
        start = b.len
        buf_add(b, <const char*>p, n)
        ws_unmask(<unsigned char*>b.data + start, n, self.mask, self.mask_pos)
        if self.opcode >= OP_CLOSE:
            return 0
        if self.msg_compressed:
            return ws_inflate(self, <const unsigned char*>b.data, n, self.msg_opcode == OP_TEXT, events)
        if self.msg_opcode == OP_TEXT and self._utf8(<const unsigned char*>b.data + start, n) < 0:
            return self._fail(events, 1007, "invalid UTF-8 in a text message")
        return 0

    cdef int _on_frame_end(self, list events) except -1:
        cdef object message
        self.phase = WS_HEAD
        if self.opcode == OP_CLOSE:
            return self._on_close(events)
        if self.opcode == OP_PING or self.opcode == OP_PONG:
            events.append((self.opcode, PyBytes_FromStringAndSize(self.ctl.data, self.ctl.len)))
            return 0
        if not self.fin:
            return 0
        if self.msg_compressed:
            # RFC 7692 7.2.2: the sender removed the 0x00 0x00 0xff 0xff that ends a sync flush
            ws_inflate(self, <const unsigned char*>b"\x00\x00\xff\xff", 4, self.msg_opcode == OP_TEXT, events)
            if self.phase == WS_DONE:
                return 0
            if self.inflate_reset:
                inflateReset(&self.z_in)
        if self.msg_opcode == OP_TEXT:
            if self.u_need:
                return self._fail(events, 1007, "invalid UTF-8 in a text message")
            message = PyUnicode_DecodeUTF8(self.msg.data, self.msg.len, NULL)
        else:
            message = PyBytes_FromStringAndSize(self.msg.data, self.msg.len)
        events.append(message)
        self.msg_opcode = 0
        self.msg.len = 0
        if self.msg.cap > WS_KEEP_BUFFER:
            buf_free(&self.msg)
        return 0

    cdef int _on_close(self, list events) except -1:
        cdef const unsigned char* p = <const unsigned char*>self.ctl.data
        cdef Py_ssize_t n = self.ctl.len
        cdef int code
        if n == 0:
            self.phase = WS_DONE
            events.append((OP_CLOSE, 1005, ""))
            return 0
        if n == 1:
            return self._fail(events, 1002, "close frame with a 1-byte payload")
        code = (p[0] << 8) | p[1]
        if not ws_close_code_ok(code):
            return self._fail(events, 1002, "invalid close code")
        self.u_need = 0
        if self._utf8(p + 2, n - 2) < 0 or self.u_need:
            return self._fail(events, 1007, "invalid UTF-8 in the close reason")
        self.phase = WS_DONE
        events.append((OP_CLOSE, code, PyUnicode_DecodeUTF8(<const char*>p + 2, n - 2, NULL)))
        return 0

    cdef int _utf8(self, const unsigned char* p, Py_ssize_t n) noexcept nogil:
        """Check ``n`` more bytes of UTF-8 (RFC 3629 4), carrying a sequence cut between calls
        in u_need/u_lo/u_hi: -1 at the first byte that cannot be part of valid UTF-8."""
        cdef Py_ssize_t i = 0
        cdef int need = self.u_need
        cdef unsigned char lo = self.u_lo
        cdef unsigned char hi = self.u_hi
        cdef unsigned char c
        cdef uint64_t w
        while i < n:
            if need == 0:
                # ASCII runs eight bytes at a time
                while i + 8 <= n:
                    memcpy(&w, p + i, 8)
                    if w & 0x8080808080808080ULL:
                        break
                    i += 8
                if i >= n:
                    break
                c = p[i]
                i += 1
                if c < 0x80:
                    continue
                lo = 0x80
                hi = 0xBF
                if 0xC2 <= c <= 0xDF:
                    need = 1
                elif c == 0xE0:
                    need = 2
                    lo = 0xA0           # no overlong 3-byte forms
                elif 0xE1 <= c <= 0xEC or c == 0xEE or c == 0xEF:
                    need = 2
                elif c == 0xED:
                    need = 2
                    hi = 0x9F           # no surrogates
                elif c == 0xF0:
                    need = 3
                    lo = 0x90           # no overlong 4-byte forms
                elif 0xF1 <= c <= 0xF3:
                    need = 3
                elif c == 0xF4:
                    need = 3
                    hi = 0x8F           # nothing above U+10FFFF
                else:
                    return -1
            else:
                c = p[i]
                i += 1
                if c < lo or c > hi:
                    return -1
                need -= 1
                lo = 0x80
                hi = 0xBF
        self.u_need = need
        self.u_lo = lo
        self.u_hi = hi
        return 0

    # -- building

    cpdef bytes message(self, data):
        """A data frame for ``data``: str as text, bytes-like as binary; compressed when
        permessage-deflate was negotiated."""
        cdef const char* p
        cdef Py_ssize_t n
        cdef int b0
        cdef Py_buffer view
        if type(data) is str:
            p = PyUnicode_AsUTF8AndSize(data, &n)
            b0 = 0x80 | OP_TEXT
        elif type(data) is bytes:
            p = PyBytes_AS_STRING(data)
            n = PyBytes_GET_SIZE(data)
            b0 = 0x80 | OP_BINARY
        else:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
            try:
                if self.deflate:
                    return ws_deflate_frame(self, 0x80 | OP_BINARY, <const char*>view.buf, view.len)
                return self._frame(0x80 | OP_BINARY, <const char*>view.buf, view.len)
            finally:
                PyBuffer_Release(&view)
        if self.deflate:
            return ws_deflate_frame(self, b0, p, n)
        return self._frame(b0, p, n)

    def control(self, int opcode, bytes payload=b""):
        """A ping or pong frame (RFC 6455 5.5.2, 5.5.3)."""
        if PyBytes_GET_SIZE(payload) > WS_MAX_CONTROL:
            raise ValueError("control frame payload is longer than 125 bytes")
        return self._frame(0x80 | opcode, PyBytes_AS_STRING(payload), PyBytes_GET_SIZE(payload))

    def close_frame(self, int code, str reason=""):
        """A close frame (RFC 6455 5.5.1); code 1005 makes one with no payload."""
        cdef bytes payload
        if code == 1005:
            return self._frame(0x80 | OP_CLOSE, NULL, 0)
        payload = bytes((code >> 8, code & 0xFF)) + reason.encode()
        return self.control(OP_CLOSE, payload)

    cdef bytes _frame(self, int b0, const char* p, Py_ssize_t n):
        """An unmasked server frame (RFC 6455 5.2): the head, then the payload, one bytes."""
        cdef Py_ssize_t h = 2 if n < 126 else (4 if n < 65536 else 10)
        cdef bytes out = PyBytes_FromStringAndSize(NULL, h + n)
        cdef unsigned char* o = <unsigned char*>PyBytes_AS_STRING(out)
        ws_head(o, h, b0, n)
        if n:
            memcpy(o + h, p, n)
        return out


cdef inline void ws_head(unsigned char* o, Py_ssize_t h, int b0, Py_ssize_t n) noexcept nogil:
    """Write the ``h``-byte head of an unmasked frame with ``n`` payload bytes at ``o``."""
    cdef int k
    o[0] = <unsigned char>b0
    if h == 2:
        o[1] = <unsigned char>n
    elif h == 4:
        o[1] = 126
        o[2] = <unsigned char>(n >> 8)
        o[3] = <unsigned char>n
    else:
        o[1] = 127
        for k in range(8):
            o[2 + k] = <unsigned char>((<unsigned long long>n) >> (56 - 8 * k))
