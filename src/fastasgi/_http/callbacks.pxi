# --- llhttp callbacks -----------------------------------------------------------------------------
# Trampolines, no logic: the data pointer is the connection's HttpProtocol; each calls the
# _on_<event> of the protocol (message events) or of its RequestParser (the pieces of a head).
# No Python exception escapes into C: the _on_<event>s that cannot raise are declared
# noexcept and called directly; for the others an exception is stored on the protocol and
# -1 returned, and HttpProtocol._parse handles it once llhttp_execute has returned.

cdef llhttp_settings_t SETTINGS


cdef int cb_on_message_begin(llhttp_t* p) noexcept:
    cdef HttpProtocol self = <HttpProtocol>p.data
    try:
        return self._on_message_begin()
    except BaseException as e:
        self.exc = e
        return -1


cdef int cb_on_url(llhttp_t* p, const char* at, size_t n) noexcept:
    return (<HttpProtocol>p.data).parser._on_url(at, n)


cdef int cb_on_protocol(llhttp_t* p, const char* at, size_t n) noexcept:
    return (<HttpProtocol>p.data).parser._on_protocol(at, n)


cdef int cb_on_header_field(llhttp_t* p, const char* at, size_t n) noexcept:
    return (<HttpProtocol>p.data).parser._on_field_name(at, n)


cdef int cb_on_header_value(llhttp_t* p, const char* at, size_t n) noexcept:
    return (<HttpProtocol>p.data).parser._on_field_bytes(at, n)


cdef int cb_on_header_value_complete(llhttp_t* p) noexcept:
    cdef HttpProtocol self = <HttpProtocol>p.data
    try:
        return self.parser._on_header_value_complete()
    except BaseException as e:
        self.exc = e
        return -1


cdef int cb_on_headers_complete(llhttp_t* p) noexcept:
    cdef HttpProtocol self = <HttpProtocol>p.data
    try:
        return self._on_headers_complete()
    except BaseException as e:
        self.exc = e
        return -1


cdef int cb_on_chunk_extension(llhttp_t* p, const char* at, size_t n) noexcept:
    return (<HttpProtocol>p.data).parser._on_chunk_extension(n)


cdef int cb_on_body(llhttp_t* p, const char* at, size_t n) noexcept:
    cdef HttpProtocol self = <HttpProtocol>p.data
    try:
        return self._on_body(at, n)
    except BaseException as e:
        self.exc = e
        return -1


cdef int cb_on_message_complete(llhttp_t* p) noexcept:
    cdef HttpProtocol self = <HttpProtocol>p.data
    try:
        return self._on_message_complete()
    except BaseException as e:
        self.exc = e
        return -1


llhttp_settings_init(&SETTINGS)
SETTINGS.on_message_begin = cb_on_message_begin
SETTINGS.on_url = cb_on_url
SETTINGS.on_protocol = cb_on_protocol
SETTINGS.on_header_field = cb_on_header_field
SETTINGS.on_header_value = cb_on_header_value
SETTINGS.on_header_value_complete = cb_on_header_value_complete
SETTINGS.on_headers_complete = cb_on_headers_complete
SETTINGS.on_chunk_extension_name = cb_on_chunk_extension
SETTINGS.on_chunk_extension_value = cb_on_chunk_extension
SETTINGS.on_body = cb_on_body
SETTINGS.on_message_complete = cb_on_message_complete
