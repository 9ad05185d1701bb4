"""The default of every setting, defined once.

``Config``'s keyword defaults, the command line's defaults (and its ``--help``) and the
compiled core's keyword defaults all read them from here, so a default is changed in one
place. This module imports nothing: anything may import it, the core included.

The defaults are uvicorn's where uvicorn has the setting.
"""

HOST = "127.0.0.1"
PORT = 8000
BACKLOG = 2048

LOOP = "auto"
HTTP = "auto"
WS = "auto"
LIFESPAN = "auto"
INTERFACE = "auto"

WS_MAX_SIZE = 16 * 1024 * 1024
WS_MAX_QUEUE = 32
WS_PING_INTERVAL = 20.0
WS_PING_TIMEOUT = 20.0
WS_PER_MESSAGE_DEFLATE = True
# zlib's level for permessage-deflate: its default, 6, what uvicorn (the websockets package)
# compresses with
WS_PER_MESSAGE_DEFLATE_LEVEL = 6

RELOAD_DELAY = 0.25

LIMIT_MAX_REQUESTS_JITTER = 0
#: --limit-max-memory MIB: a worker whose resident set (RSS) grows past it is recycled (a
#: replacement starts and is ready before it stops accepting); None: never. Its jitter, in
#: MiB, spreads the limits of the workers apart, so that workers that grow alike are not all
#: recycled at the same moment.
LIMIT_MAX_MEMORY = None
LIMIT_MAX_MEMORY_JITTER = 0
#: --limit-worker-lifetime SECONDS: a worker is recycled after serving that long; None:
#: never. Its jitter (seconds) staggers workers started together.
LIMIT_WORKER_LIFETIME = None
LIMIT_WORKER_LIFETIME_JITTER = 0.0
#: most bytes in a request line plus its headers (431 beyond it)
LIMIT_REQUEST_HEAD_SIZE = 65536
#: most header lines in one request (431 beyond it)
LIMIT_REQUEST_FIELDS = 100

TIMEOUT_KEEP_ALIVE = 5
TIMEOUT_NOTIFY = 30
TIMEOUT_WORKER_HEALTHCHECK = 5
#: seconds between SIGTERM (or the first SIGINT) and closing the listener: /readyz already
#: answers 503 and the server still serves, while the load balancer takes it out of rotation
DRAIN_DELAY = 0.0

# Slow-client defences uvicorn does not have (0 or None turns each off):
#: seconds from the first byte of a request head to its end; beyond it 408 and close. Heads
#: are a few KB and arrive in one or two packets even on a slow mobile link; a client still
#: sending one after 30 s is trickling it to hold the connection (slowloris). Apache's
#: mod_reqtimeout allows 20-40 s, nginx's client_header_timeout 60 s.
TIMEOUT_REQUEST_HEAD = 30.0
#: seconds without a body byte while the app waits for the body; beyond it 408 and close.
#: nginx's client_body_timeout (the same rule: between two reads) is 60 s.
TIMEOUT_REQUEST_BODY = 60.0
#: seconds from a request's head to its response's end; past it the app is cancelled and the
#: client gets 504 (or the connection closes if the response had begun). Off by default.
TIMEOUT_REQUEST = None

#: --forwarded-allow-ips when neither the flag nor $FORWARDED_ALLOW_IPS is set
FORWARDED_ALLOW_IPS = "127.0.0.1,::1"

#: --proxy-protocol: read a PROXY protocol header (haproxy's, "v1", "v2", or either or none:
#: "auto") before HTTP on every connection; "off": never
PROXY_PROTOCOL = "off"
PROXY_PROTOCOLS = ("off", "v1", "v2", "auto")

#: what happens to a request header field whose name contains "_" (gunicorn's header_map):
#: "drop" it, "refuse" the request with 400, or pass it through ("dangerous")
HEADER_MAP = "drop"
#: in the order of the core's HEADER_MAP_* values (src/fastasgi/_http/_core.pxd)
HEADER_MAPS = ("drop", "refuse", "dangerous")

#: --log-format: "text" (uvicorn's lines) or "json" (one JSON object per line)
LOG_FORMAT = "text"
LOG_FORMATS = ("text", "json")

#: --admin-bind: the admin listener (GET /metrics); None: no admin listener, and nothing is
#: counted
ADMIN_BIND = None

#: --http2: serve HTTP/2 (h2c by its connection preface on a cleartext listener, h2 by ALPN
#: over TLS). On: no HTTP/1.1 client sends the preface, so HTTP/1.1 is served as before.
HTTP2 = True
#: SETTINGS_MAX_CONCURRENT_STREAMS (RFC 9113 6.5.2): streams a client may have open at once;
#: more are refused with RST_STREAM(REFUSED_STREAM). 100 is the RFC's recommended minimum and
#: nginx's default.
HTTP2_MAX_CONCURRENT_STREAMS = 100
#: SETTINGS_INITIAL_WINDOW_SIZE: request body bytes a stream may have sent ahead of the app's
#: receive() (1 MiB, granian's default; the protocol's 64 KiB stalls uploads on every RTT)
HTTP2_INITIAL_STREAM_WINDOW_SIZE = 1024 * 1024
#: the connection's window: request body bytes all streams of a connection may have sent
#: ahead of their apps, i.e. the most one connection can make the server hold
HTTP2_INITIAL_CONNECTION_WINDOW_SIZE = 4 * 1024 * 1024
#: SETTINGS_MAX_FRAME_SIZE: the largest frame payload the server accepts (the protocol's
#: minimum, 16 KiB, as nginx and granian)
HTTP2_MAX_FRAME_SIZE = 16384
