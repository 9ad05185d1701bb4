# Declares only the parts of llhttp (csrc/llhttp/include/llhttp.h) that _core.pyx uses.

from libc.stdint cimport uint8_t, uint16_t, uint64_t, int32_t


cdef extern from "llhttp.h":
    int LLHTTP_VERSION_MAJOR
    int LLHTTP_VERSION_MINOR
    int LLHTTP_VERSION_PATCH

    ctypedef struct llhttp_t:
        int32_t error
        const char* reason
        const char* error_pos
        void* data
        uint64_t content_length
        uint8_t method
        uint8_t http_major
        uint8_t http_minor
        uint8_t upgrade
        uint16_t flags

    ctypedef int (*llhttp_data_cb)(llhttp_t*, const char* at, size_t length) noexcept
    ctypedef int (*llhttp_cb)(llhttp_t*) noexcept

    ctypedef struct llhttp_settings_t:
        llhttp_cb on_message_begin
        llhttp_data_cb on_protocol
        llhttp_data_cb on_url
        llhttp_data_cb on_method
        llhttp_data_cb on_header_field
        llhttp_data_cb on_header_value
        llhttp_cb on_header_value_complete
        llhttp_cb on_headers_complete
        llhttp_data_cb on_chunk_extension_name
        llhttp_data_cb on_chunk_extension_value
        llhttp_data_cb on_body
        llhttp_cb on_message_complete

    ctypedef enum llhttp_errno_t:
        HPE_OK
        HPE_PAUSED
        HPE_PAUSED_UPGRADE
        HPE_USER
        HPE_INVALID_TRANSFER_ENCODING
        HPE_INVALID_VERSION

    ctypedef enum llhttp_type_t:
        HTTP_REQUEST

    enum:
        F_CONNECTION_UPGRADE
        F_CHUNKED
        F_UPGRADE
        F_CONTENT_LENGTH
        F_TRANSFER_ENCODING

    enum:
        HTTP_HEAD
        HTTP_GET
        HTTP_CONNECT
        HTTP_OPTIONS

    void llhttp_init(llhttp_t* parser, llhttp_type_t type, const llhttp_settings_t* settings)
    void llhttp_set_lenient_version(llhttp_t* parser, int enabled)
    void llhttp_settings_init(llhttp_settings_t* settings)
    llhttp_errno_t llhttp_execute(llhttp_t* parser, const char* data, size_t len)
    void llhttp_resume(llhttp_t* parser)
    void llhttp_resume_after_upgrade(llhttp_t* parser)
    int llhttp_should_keep_alive(const llhttp_t* parser)
    int llhttp_message_needs_eof(const llhttp_t* parser)
    const char* llhttp_method_name(uint8_t method)
