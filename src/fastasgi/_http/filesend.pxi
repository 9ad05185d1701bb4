# --- files as response bodies: the ASGI "Path Send" and "Zero Copy Send" extensions -------------
#
# ASGI extensions (specs/extensions.rst):
# - Path Send: after http.response.start the app sends {"type": "http.response.pathsend",
#   "path": str}, "the string representation of the absolute file path to be sent by the
#   server"; the file is the whole body and the response is complete when it is out.
# - Zero Copy Send: {"type": "http.response.zerocopysend", "file": an open file (an object
#   with fileno(), or the descriptor itself), "offset" (default: the file's current
#   position), "count" (default: to its end), "more_body" (default False)}: `count` bytes of
#   the file are the next piece of the body; with more_body more body messages follow. The
#   file stays the app's: it is never closed here, nor its position moved.
# Both are advertised in scope["extensions"] by both protocols (HttpProtocol.connection_made,
# H2Protocol._take_over).
#
# Everything the app can get wrong (a relative path, a file that is missing, not a regular
# file, or whose size is not the Content-Length the app declared, an offset or count outside
# the file) raises in send() before a byte of the response is on the wire, so the app's
# failure gives the usual 500. When the app declared no Content-Length and the file ends the
# body, the server adds the file's size as one, on both protocols (a HEAD's says what GET's
# would be).
#
# The bytes go through Exchange._send_body like the app's own body messages, so framing,
# the Content-Length checks, HEAD, trailers and the access log are the ones every response
# has, and memory stays bounded by the same flow control: pieces of FILE_PIECE bytes read
# with pread, the next read only once _send_wait says the previous piece is taken (HTTP/1.1:
# the transport is not paused; HTTP/2: the stream's out buffer is at most HIGH_WATER, which
# nghttp2 drains into DATA frames as the client's windows open). One exception, for speed:
# an HTTP/1.1 response over a plain TCP socket of asyncio's selector loop goes out with
# os.sendfile (file to socket in the kernel) while the transport has nothing buffered; when
# the socket is full, one piece goes through the transport, whose own writer and
# pause_writing then say when to go on. asyncio's loop.sendfile() is not used: it registers
# a writer of its own on the socket, which a close of the connection meanwhile (a timeout,
# a shutdown, an abort) leaves behind; uvloop has no native sendfile, and TLS needs the bytes
# in user space: both take the pread path.
#
# The send() awaitable completes when the last byte is handed to the transport (HTTP/1.1) or
# to the stream's buffer (HTTP/2), as for a body message; ClientDisconnected once the client
# is gone. A file the server opened is closed on every way out (done, client gone, reset,
# the app cancelled by --timeout-request), and by FileSource's finaliser if the app never
# awaited the send.

cdef Py_ssize_t FILE_PIECE = 262144         # bytes per pread piece on HTTP/1.1
cdef Py_ssize_t SENDFILE_STEP = 1048576     # bytes asked of one os.sendfile call
cdef object os_pread = os.pread
cdef object os_sendfile = os.sendfile if hasattr(os, "sendfile") else None
cdef object aio_sleep = asyncio.sleep
# asyncio's plain TCP transport, the only one os.sendfile may write under (see the top)
cdef str SELECTOR_SOCKET_TRANSPORT = "_SelectorSocketTransport"

# how file bodies went out, for tests and debugging (file_send_stats)
cdef unsigned long long fs_responses = 0
cdef unsigned long long fs_sendfile_bytes = 0
cdef unsigned long long fs_pread_bytes = 0


def file_send_stats():
    """Counts of this process's file bodies: responses, and bytes sent by os.sendfile and by
    pread pieces."""
    return {"responses": fs_responses, "sendfile_bytes": fs_sendfile_bytes,
            "pread_bytes": fs_pread_bytes}


@cython.final
cdef class FileSource:
    """The bytes of a file body: a descriptor, where to read and how much is left."""

    def __dealloc__(self):
        self.close()

    cdef close(self):
        cdef int fd = self.fd
        if self.owned and fd >= 0:
            self.fd = -1
            os.close(fd)


cdef FileSource open_path(object path):
    """Path Send: the file at an absolute path, opened and checked before anything is sent."""
    cdef FileSource src = FileSource.__new__(FileSource)
    cdef object st
    src.fd = -1
    if not isinstance(path, str):
        raise RuntimeError("http.response.pathsend needs 'path' as a str, got %r" % (path,))
    if not os.path.isabs(path):
        # the extension sends "the absolute file path": a relative one would depend on the
        # server's working directory
        raise RuntimeError("http.response.pathsend needs an absolute path, got %r" % (path,))
    # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused just below)
    src.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    src.owned = True
    st = os.fstat(src.fd)
    if not stat.S_ISREG(st.st_mode):
        src.close()
        raise RuntimeError("http.response.pathsend: %r is not a regular file" % (path,))
    src.offset = 0
    src.remaining = st.st_size
    return src


cdef FileSource open_zerocopy(dict m):
    """Zero Copy Send: the app's open file, with the window of it to send."""
    cdef FileSource src = FileSource.__new__(FileSource)
    cdef object f = m.get("file")
    cdef object st, offset, count
    src.fd = -1
    src.fd = f if type(f) is int else f.fileno()
    st = os.fstat(src.fd)
    if not stat.S_ISREG(st.st_mode):
        raise RuntimeError("http.response.zerocopysend: the file is not a regular file")
    offset = m.get("offset")
    if offset is None:
        offset = os.lseek(src.fd, 0, os.SEEK_CUR)
    count = m.get("count")
    if count is None:
        count = max(st.st_size - offset, 0)
    if offset < 0 or count < 0 or offset + count > st.st_size:
        raise RuntimeError("http.response.zerocopysend: offset %r and count %r are outside the "
                           "file's %d bytes" % (offset, count, st.st_size))
    src.offset = offset
    src.remaining = count
    return src


cdef object send_file(Exchange ex, dict m, bint by_path):
    """send() of a file message (Exchange._send_file): the checks, then the awaitable that
    sends the file."""
    cdef FileSource src
    cdef bint more = False
    cdef int found
    if ex.response == RESP_NONE:
        raise RuntimeError("Unexpected ASGI message '%s' sent, before 'http.response.start'."
                           % (m["type"],))
    if ex.response == RESP_DONE or ex.body_ended:
        raise RuntimeError("Unexpected ASGI message '%s' sent, after response already completed."
                           % (m["type"],))
    if by_path:
        src = open_path(m.get("path"))
    else:
        src = open_zerocopy(m)
        more = bool(m.get("more_body", False))
    try:
        if ex.response == RESP_STARTED:
            # the head is not out: Content-Length is checked against the file, or added
            # (the field scan is repeated when the head is written; only file bodies pay)
            found = ex._scan_headers()
            if found & FOUND_LENGTH:
                if ex.expected_length != src.remaining and not more and not ex.is_head:
                    raise RuntimeError("Response Content-Length %d differs from the file's %d bytes"
                                       % (ex.expected_length, src.remaining))
            elif not more and ex.status >= 200 and ex.status != 204 and ex.status != 304:
                ex.resp_headers = list(ex.resp_headers)
                ex.resp_headers.append((b"content-length", b"%d" % src.remaining))
                ex.expected_length = src.remaining
        if ex.expected_length >= 0 and not ex.is_head and \
                ex.sent_length + src.remaining > ex.expected_length:
            raise RuntimeError("Response content longer than Content-Length")
    except BaseException:
        src.close()
        raise
    return _file_body(ex, src, more)


async def _file_body(Exchange ex, FileSource src, bint more):
    """Send src's bytes as the body (the rest of it unless `more`), piece by piece under the
    protocol's flow control (see the top)."""
    global fs_responses, fs_pread_bytes
    cdef Py_ssize_t piece_size = HIGH_WATER if type(ex) is H2Stream else FILE_PIECE
    cdef bytes piece
    cdef Py_ssize_t n
    cdef bint last
    try:
        fs_responses += 1
        if ex.is_head or (ex.status < 200 or ex.status == 204 or ex.status == 304):
            src.remaining = 0       # no body on the wire (RFC 9110 9.3.2, 15.3.5, 15.4.5)
        elif type(ex) is RequestCycle and src.remaining and os_sendfile is not None:
            await _h1_sendfile(<RequestCycle>ex, src)
        while True:
            if src.remaining:
                n = <Py_ssize_t>min(<long long>piece_size, src.remaining)
                piece = os_pread(src.fd, n, src.offset)
                if PyBytes_GET_SIZE(piece) == 0:
                    # the file shrank since it was opened: the response cannot be completed
                    raise RuntimeError("The file ended %d bytes early" % src.remaining)
                src.offset += PyBytes_GET_SIZE(piece)
                src.remaining -= PyBytes_GET_SIZE(piece)
                fs_pread_bytes += PyBytes_GET_SIZE(piece)
            else:
                piece = EMPTY
            last = src.remaining == 0
            ex._send_body(piece, more or not last)
            if last:
                break
            await ex._send_wait()
            if ex.disconnected:
                raise ClientDisconnected("client disconnected")
        await ex._send_wait()
    finally:
        src.close()


async def _h1_sendfile(RequestCycle cycle, FileSource src):
    """HTTP/1.1 over asyncio's plain TCP transport: the file goes from the page cache to the
    socket with os.sendfile while the transport has nothing buffered. Leaves src.remaining
    at 0, or as is when this transport or framing cannot take it (the pread pieces then)."""
    global fs_sendfile_bytes, fs_pread_bytes
    cdef HttpProtocol proto = cycle.proto
    cdef object transport = proto.transport
    cdef bytes piece
    cdef long long n
    cdef int sock_fd
    if transport is None or type(transport).__name__ != SELECTOR_SOCKET_TRANSPORT or \
            transport.get_extra_info("sslcontext") is not None:
        return
    # the head alone (its framing decides: only a Content-Length body is the file's bytes
    # unchanged)
    cycle._send_body(EMPTY, True)
    if cycle.framing != FRAMING_LENGTH:
        return
    if proto.corked:
        # inside data_received the head waits in the cork: it goes first
        transport.writelines(proto.corked)
        proto.corked = []
        proto.corked_size = 0
    sock_fd = transport.get_extra_info("socket").fileno()
    while src.remaining:
        if cycle.disconnected or transport.is_closing():
            raise ClientDisconnected("client disconnected")
        if not proto.writing_paused and transport.get_write_buffer_size() == 0:
            try:
                n = os_sendfile(sock_fd, src.fd, src.offset,
                                <Py_ssize_t>min(<long long>SENDFILE_STEP, src.remaining))
            except (BlockingIOError, InterruptedError):
                n = -1      # the socket's buffer is full: a piece through the transport
            except OSError as exc:
                # the client reset the connection (EPIPE, ECONNRESET): as a failed write
                proto._close()
                cycle._connection_lost()
                raise ClientDisconnected("client disconnected") from exc
            if n == 0:
                raise RuntimeError("The file ended %d bytes early" % src.remaining)
            if n > 0:
                src.offset += n
                src.remaining -= n
                cycle.sent_length += n
                fs_sendfile_bytes += n
                if M != NULL:
                    M.bytes_sent += n
                # one step a loop iteration: other connections are served meanwhile
                await aio_sleep(0)
                continue
        # The kernel takes no more now (or the transport still holds bytes): a piece through
        # the transport, which writes it as the socket drains and pauses us past its high-water
        # mark. HIGH_WATER, not FILE_PIECE: a slow client holds at most about twice this in
        # the transport's buffer (asyncio's default limit is 64 KiB too).
        n = min(<long long>HIGH_WATER, src.remaining)
        piece = os_pread(src.fd, <Py_ssize_t>n, src.offset)
        if PyBytes_GET_SIZE(piece) == 0:
            raise RuntimeError("The file ended %d bytes early" % src.remaining)
        src.offset += PyBytes_GET_SIZE(piece)
        src.remaining -= PyBytes_GET_SIZE(piece)
        fs_pread_bytes += PyBytes_GET_SIZE(piece)
        cycle._send_body(piece, True)
        await cycle._send_wait()
