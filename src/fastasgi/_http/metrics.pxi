# --- per-process counters, in C ------------------------------------------------------------------
#
# One Counters block per process, written only by that process with plain increments (no
# lock, no Python call per request). Where it lives is the server's choice: metrics_attach()
# points the process at a block, typically its slot in a shared anonymous mmap the supervisor
# made before forking, so the supervisor reads every worker's block and keeps a dead worker's
# counts. Until a block is attached nothing is counted (M is NULL: each counting site is one
# pointer test). The admin listener (fastasgi/admin.py) renders the blocks for Prometheus.

cdef enum:
    M_METHODS = 8           # GET HEAD POST PUT DELETE PATCH OPTIONS, and OTHER
    M_CODES = 500           # status 100..599
    M_PROTOCOLS = 3         # HTTP/1.0, HTTP/1.1, HTTP/2
    M_BUCKETS = 18          # the histogram's finite upper bounds (DURATION_BOUNDS)

cdef struct Counters:
    uint64_t requests[M_PROTOCOLS][M_METHODS][M_CODES]
    uint64_t duration_buckets[M_BUCKETS + 1]     # per bucket, not cumulative; last: +Inf
    uint64_t duration_count
    double duration_sum
    uint64_t refused[M_CODES]
    uint64_t connections_accepted
    uint64_t connections_closed
    uint64_t bytes_received
    uint64_t bytes_sent
    uint64_t ws_messages_in
    uint64_t ws_messages_out
    uint64_t app_exceptions
    # gauges: meaningful for a live process only
    int64_t in_flight
    int64_t open_http
    int64_t open_http2
    int64_t open_websocket

# Request duration bounds in seconds, 100 us to 60 s (Prometheus' histogram convention: le).
cdef double DURATION_BOUNDS[M_BUCKETS]
for _i, _le in enumerate((0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                          0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)):
    DURATION_BOUNDS[_i] = _le

cdef tuple METRIC_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "OTHER")
cdef tuple METRIC_PROTOCOLS = ("1.0", "1.1", "2")
cdef unsigned char METHOD_INDEX[METHOD_COUNT]
for _m in range(METHOD_COUNT):
    METHOD_INDEX[_m] = METRIC_METHODS.index(METHODS[_m]) if METHODS[_m] in METRIC_METHODS \
        else M_METHODS - 1

cdef Counters* M = NULL         # this process's block, or NULL: not counting
cdef object M_owner = None      # keeps the attached buffer alive

METRICS_SIZE = sizeof(Counters)


cdef Counters* counters_of(object buffer) except NULL:
    cdef unsigned char[::1] view = buffer
    if view.shape[0] < <Py_ssize_t>sizeof(Counters):
        raise ValueError("a metrics block needs %d bytes, got %d" % (sizeof(Counters), view.shape[0]))
    return <Counters*>&view[0]


def metrics_attach(buffer):
    """Count this process's traffic into `buffer` (writable, at least METRICS_SIZE bytes)
    from now on."""
    global M, M_owner
    cdef Counters* block = counters_of(buffer)
    M_owner = memoryview(buffer)
    M = block


def metrics_detach():
    """Stop counting."""
    global M, M_owner
    M = NULL
    M_owner = None


def metrics_reset(buffer):
    memset(counters_of(buffer), 0, sizeof(Counters))


def metrics_add(dst, src):
    """dst += src for the counters and the histogram; the gauges of dst stay as they are
    (a retired process's in-flight requests and open connections are gone with it)."""
    cdef Counters* d = counters_of(dst)
    cdef Counters* s = counters_of(src)
    cdef int p, m, k
    for p in range(M_PROTOCOLS):
        for m in range(M_METHODS):
            for k in range(M_CODES):
                d.requests[p][m][k] += s.requests[p][m][k]
    for k in range(M_BUCKETS + 1):
        d.duration_buckets[k] += s.duration_buckets[k]
    d.duration_count += s.duration_count
    d.duration_sum += s.duration_sum
    for k in range(M_CODES):
        d.refused[k] += s.refused[k]
    d.connections_accepted += s.connections_accepted
    d.connections_closed += s.connections_closed
    d.bytes_received += s.bytes_received
    d.bytes_sent += s.bytes_sent
    d.ws_messages_in += s.ws_messages_in
    d.ws_messages_out += s.ws_messages_out
    d.app_exceptions += s.app_exceptions


def metrics_read(buffer):
    """A snapshot of a block, as plain Python values (non-zero request series only)."""
    cdef Counters* c = counters_of(buffer)
    cdef int p, m, k
    cdef uint64_t n, cumulative = 0
    cdef dict requests = {}
    cdef dict refused = {}
    cdef list buckets = []
    for p in range(M_PROTOCOLS):
        for m in range(M_METHODS):
            for k in range(M_CODES):
                n = c.requests[p][m][k]
                if n:
                    requests[(METRIC_METHODS[m], 100 + k, METRIC_PROTOCOLS[p])] = n
    for k in range(M_CODES):
        if c.refused[k]:
            refused[100 + k] = c.refused[k]
    for k in range(M_BUCKETS):
        cumulative += c.duration_buckets[k]
        buckets.append((DURATION_BOUNDS[k], cumulative))
    return {
        "requests": requests,
        "duration_buckets": buckets,
        "duration_sum": c.duration_sum,
        "duration_count": c.duration_count,
        "in_flight": c.in_flight,
        "connections_open": {"http": c.open_http, "http2": c.open_http2,
                             "websocket": c.open_websocket},
        "connections_accepted": c.connections_accepted,
        "connections_closed": c.connections_closed,
        "bytes_received": c.bytes_received,
        "bytes_sent": c.bytes_sent,
        "refused": refused,
        "ws_messages_in": c.ws_messages_in,
        "ws_messages_out": c.ws_messages_out,
        "app_exceptions": c.app_exceptions,
    }


cpdef metrics_ws(long long messages_in=0, long long messages_out=0, long long bytes_in=0,
                 long long bytes_out=0, int closed=0):
    """What the WebSocket layer counts (it is Python): messages and bytes each way, and its
    connection's end."""
    if M == NULL:
        return
    M.ws_messages_in += messages_in
    M.ws_messages_out += messages_out
    M.bytes_received += bytes_in
    M.bytes_sent += bytes_out
    if closed:
        M.open_websocket -= 1
        M.connections_closed += 1


# --- the counting sites' helpers (each caller tests M first) --------------------------------------

cdef inline void count_request_at(int protocol, int method_index, int status, double t0) noexcept:
    """One response completed: `protocol` indexes METRIC_PROTOCOLS, `method_index`
    METRIC_METHODS."""
    cdef double seconds = monotonic() - t0
    cdef int k = 0
    if 100 <= status <= 599:
        M.requests[protocol][method_index][status - 100] += 1
    while k < M_BUCKETS and seconds > DURATION_BOUNDS[k]:
        k += 1
    M.duration_buckets[k] += 1
    M.duration_count += 1
    M.duration_sum += seconds
