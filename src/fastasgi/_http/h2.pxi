# --- HTTP/2 over nghttp2 ------------------------------------------------------------------------
#
# nghttp2 is vendored from Debian's source package with its security patches applied
# (csrc/nghttp2/VERSION). The HTTP/2 connection will live here; for now, what a test reads to
# know which nghttp2 is linked in.


def nghttp2_version() -> str:
    # 0: no minimum version (nghttp2_version() returns NULL only below the minimum asked for)
    cdef nghttp2.nghttp2_info* info = nghttp2.nghttp2_version(0)
    return info.version_str.decode("ascii")


def nghttp2_has_security_options() -> bool:
    # These two options come from Debian's patches, not from upstream 1.52.0: a build against
    # an unpatched nghttp2 fails to compile or link here.
    cdef nghttp2.nghttp2_option* option = NULL
    if nghttp2.nghttp2_option_new(&option) != 0:
        raise MemoryError()
    # the values are nghttp2's own defaults (lib/nghttp2_session.h)
    # CVE-2023-44487: at most 1000 streams reset by the peer in a burst, then 33 a second
    nghttp2.nghttp2_option_set_stream_reset_rate_limit(option, 1000, 33)
    # CVE-2024-28182: at most 8 CONTINUATION frames after a HEADERS frame
    nghttp2.nghttp2_option_set_max_continuations(option, 8)
    nghttp2.nghttp2_option_del(option)
    return True
