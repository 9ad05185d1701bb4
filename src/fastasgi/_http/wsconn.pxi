# --- WsConn: the per-message path of an upgraded websocket connection --------------------------
#
# fastasgi.websocket.WebSocketProtocol (Python) subclasses this class. The Python layer keeps
# every decision that happens once per connection or on a rare event: the handshake and its
# answers, close and failure handling, pings, timers, the denial response, shutdown. What runs
# for every message moved here, because the profile of the 32-byte echo (issue 14) had the
# Python versions of these few methods as the largest part of the server's time once the
# frame codec was compiled:
#
#   data_received -> WsCodec.feed -> one websocket.receive dict per message -> the app's
#   waiting receive() (or the queue, with read back-pressure at --ws-max-queue);
#   receive() when a message is queued; send() of websocket.send on an open connection
#   that is not write-paused (framed and queued, the shared completed awaitable back);
#   the write batching: one transport.write per loop iteration (or per WRITE_BATCH bytes).
#
# Control frames and protocol errors go back to the Python layer (_control), as do the early
# bytes of the handshake (_early_data), a receive() that finds a pending close (_close_deferred)
# and every send() that is not the fast path (_send).
#
# The states are the Python layer's (see websocket.py); the numbers are exported below.

cdef enum WsState:
    WSS_HANDSHAKE
    WSS_RESPONSE
    WSS_OPEN
    WSS_CLOSING
    WSS_CLOSED

WS_HANDSHAKE = WSS_HANDSHAKE
WS_RESPONSE = WSS_RESPONSE
WS_OPEN = WSS_OPEN
WS_CLOSING = WSS_CLOSING
WS_CLOSED = WSS_CLOSED

# outgoing frame bytes gathered before one transport.write (see WsConn.write)
cdef Py_ssize_t WRITE_BATCH = 65536

cdef str T_WS_RECEIVE = "websocket.receive"
cdef str T_WS_SEND = "websocket.send"
cdef str K_TYPE = "type"
cdef str K_TEXT = "text"
cdef str K_BYTES = "bytes"


cdef inline object msg_get(object message, str key):
    """message.get(key): a plain dict (every ASGI message in practice) without the call."""
    cdef PyObject* found
    if type(message) is dict:
        found = PyDict_GetItemWithError(message, key)
        return <object>found if found != NULL else None
    return message.get(key)


cdef class WsConn:

    def __cinit__(self, *args, **kwargs):
        self.state = WSS_HANDSHAKE
        self._queue = collections.deque()
        self._waiters = []
        self._pending = []
        self.max_queue = 1
        self.resume_at = 0

    # -- incoming

    def data_received(self, bytes data):
        cdef int state = self.state
        cdef list events
        if state == WSS_OPEN or state == WSS_CLOSING:
            events = self.codec.feed(data)
            if events:
                self._deliver(events)
            # counted once per read, not per message
            if M != NULL:
                M.ws_messages_in += self._in_count
                M.bytes_received += PyBytes_GET_SIZE(data)
            self._in_count = 0
            return
        if M != NULL:
            M.bytes_received += PyBytes_GET_SIZE(data)
        if state == WSS_HANDSHAKE:
            self._early_data(data)
        # RESPONSE, CLOSED: the exchange is HTTP only now; bytes from the peer are ignored.

    cdef int _deliver(self, list events) except -1:
        """What WsCodec.feed returned, in wire order: str and bytes are messages, tuples are
        control frames and errors, handled by the Python layer."""
        for event in events:
            if type(event) is str:
                self._message({K_TYPE: T_WS_RECEIVE, K_TEXT: event})
            elif type(event) is bytes:
                self._message({K_TYPE: T_WS_RECEIVE, K_BYTES: event})
            else:
                self._control(event)
        return 0

    cdef int _message(self, dict message) except -1:
        if self.state != WSS_OPEN:
            # After a close frame went out, data frames are discarded (RFC 6455 1.4).
            return 0
        self._in_count += 1
        self._app_busy = True
        queue = self._queue
        queue.append(message)
        if self._waiters and self.wake_one():
            return 0  # as good as taken: not counted against --ws-max-queue
        if len(queue) >= self.max_queue and not self._read_paused:
            self.pause_read()
        return 0

    cdef bint wake_one(self) except -1:
        """Wake the receive() that has waited longest; False if none waits. receive() may be
        awaited by several tasks at once: as with an asyncio.Queue, the messages stay in the
        queue until a woken receive() runs and takes the first, so each reader gets them in
        the client's order and none is lost to a cancelled one."""
        cdef list waiters = self._waiters
        while waiters:
            waiter = waiters.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                return True
        return False

    async def receive(self):
        queue = self._queue
        if not queue:
            # The app is done with what it was handed.
            self._app_busy = False
            if self._failure is not None:
                self._close_deferred()
        while True:
            if queue:
                message = queue.popleft()
                if self._read_paused and len(queue) <= self.resume_at and self.state == WSS_OPEN:
                    self.resume_read()
                return message
            if self._disconnect is not None:
                return self._disconnect
            if self._pending:
                # The app is about to wait: send what it wrote now rather than a loop turn later.
                self.flush()
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                # Cancelled: if this receive() had been woken for a message, another waiting
                # one takes the wake-up (the message is still queued).
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif queue and self._waiters:
                    self.wake_one()
                raise

    # -- outgoing

    def send(self, message):
        """ASGI send. A websocket.send on an open connection that is not write-paused is
        framed and queued right here, and the shared completed awaitable comes back (no
        coroutine, as HTTP's send); everything else goes through the Python layer's _send."""
        if self.state == WSS_OPEN and not self._write_paused and msg_get(message, K_TYPE) == T_WS_SEND:
            self.send_message(message)
            return _DONE
        return self._send(message)

    cdef int send_message(self, object message) except -1:
        """Frame a websocket.send message and queue it."""
        data = msg_get(message, K_BYTES)
        if data is None:
            data = msg_get(message, K_TEXT)
            if data is None:
                raise RuntimeError("websocket.send needs 'bytes' or 'text'.")
        self._out_count += 1
        self.write(self.codec.message(data))
        return 0

    def _send_message(self, message):
        self.send_message(message)

    cdef int write(self, bytes data) except -1:
        """Queue frame bytes; they go out in one transport.write per loop iteration (an echo
        loop answering eight queued messages makes one syscall, not eight), or at once past
        WRITE_BATCH bytes so that the transport's flow control sees them."""
        self._pending.append(data)
        self._pending_size += PyBytes_GET_SIZE(data)
        if self._pending_size >= WRITE_BATCH:
            self.flush()
        elif not self._write_scheduled:
            self._write_scheduled = True
            self.loop.call_soon(self._write_scheduled_cb)
        return 0

    def _write(self, bytes data):
        self.write(data)

    def _write_scheduled_cb(self):
        self._write_scheduled = False
        self.flush()

    cdef int flush(self) except -1:
        cdef list pending = self._pending
        cdef bytes data
        if not pending:
            return 0
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        self._pending = []
        self._pending_size = 0
        transport = self.transport
        if transport is not None and not transport.is_closing():
            if M != NULL:
                M.ws_messages_out += self._out_count
                M.bytes_sent += PyBytes_GET_SIZE(data)
            transport.write(data)
        self._out_count = 0
        return 0

    def _write_pending(self):
        self.flush()

    # -- reading flow control

    cdef int pause_read(self) except -1:
        if not self._read_paused and self.transport is not None:
            self._read_paused = True
            self.transport.pause_reading()
        return 0

    cdef int resume_read(self) except -1:
        if self._read_paused and self.transport is not None:
            self._read_paused = False
            if not self.transport.is_closing():
                self.transport.resume_reading()
        return 0

    def _pause_reading(self):
        self.pause_read()

    def _resume_reading(self):
        self.resume_read()
