# --- the C byte buffer ------------------------------------------------------------------------
# A growable buffer owned by one connection and reused request after request (struct Buf in
# _core.pxd): request heads are collected in one, response heads built in another.

cdef int buf_grow(Buf* b, Py_ssize_t extra) noexcept nogil:
    """Room for `extra` more bytes; -1 (and the buffer unchanged) when memory runs out."""
    cdef Py_ssize_t need = b.len + extra
    cdef Py_ssize_t cap
    cdef char* p
    if need <= b.cap:
        return 0
    cap = b.cap * 2 if b.cap else 1024
    if cap < need:
        cap = need
    p = <char*>realloc(b.data, cap)
    if p == NULL:
        return -1
    b.data = p
    b.cap = cap
    return 0


cdef int buf_reserve(Buf* b, Py_ssize_t extra) except -1:
    if buf_grow(b, extra) < 0:
        raise MemoryError()
    return 0


cdef inline int buf_append(Buf* b, const char* s, Py_ssize_t n) noexcept nogil:
    """buf_add for the llhttp callbacks, which may not raise: -1 when memory runs out."""
    if b.len + n > b.cap and buf_grow(b, n) < 0:
        return -1
    memcpy(b.data + b.len, s, n)
    b.len += n
    return 0


cdef inline int buf_add(Buf* b, const char* s, Py_ssize_t n) except -1:
    if buf_append(b, s, n) < 0:
        raise MemoryError()
    return 0


cdef inline int buf_add_bytes(Buf* b, bytes s) except -1:
    return buf_add(b, PyBytes_AS_STRING(s), PyBytes_GET_SIZE(s))


cdef inline int buf_add_int(Buf* b, long long v, int base) except -1:
    """v >= 0 in decimal (Content-Length) or lower-case hex (chunk sizes)."""
    cdef char tmp[24]
    cdef int i = 24
    cdef int d
    if v == 0:
        return buf_add(b, "0", 1)
    while v > 0:
        d = v % base
        i -= 1
        tmp[i] = <char>(c'0' + d) if d < 10 else <char>(c'a' + d - 10)
        v //= base
    return buf_add(b, &tmp[i], 24 - i)


cdef inline bytes buf_bytes(Buf* b):
    return PyBytes_FromStringAndSize(b.data, b.len)


cdef inline void buf_init(Buf* b) noexcept:
    b.data = NULL
    b.len = 0
    b.cap = 0


cdef inline void buf_free(Buf* b) noexcept:
    if b.data != NULL:
        free(b.data)
    buf_init(b)
