"""One settings object, validated once, and the loading of the application.

``Config`` takes every keyword uvicorn's ``Config`` takes, with uvicorn's defaults, plus
fastasgi's own limits. Everything is checked in ``__init__``: a bad value raises
``ConfigError`` with a one-line message that names the command-line flag and the value.
Settings that this version cannot honour yet are refused the same way instead of being
accepted and ignored (see ``NOT_SUPPORTED``).

``load()`` imports the application (``fastasgi._importer``), puts the proxy headers middleware
around it and builds the TLS context. Every default is ``fastasgi._defaults``'s.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import socket
import ssl
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from fastasgi import _defaults, _sockets
from fastasgi._accesslog import compile_access_format
from fastasgi._http._core import check_header, is_token
from fastasgi._importer import LoadError, import_from_string, load_app
from fastasgi.logging import LOG_FORMATS, LOG_LEVELS, LOGGING_CONFIG, LogConfig, configure_logging
from fastasgi.middleware.proxy_headers import ProxyHeadersMiddleware, TrustedProxies

LifespanType = Literal["auto", "on", "off"]
LoopType = Literal["none", "auto", "asyncio", "uvloop"]
WSType = Literal["auto", "none", "websockets", "websockets-sansio"]
InterfaceType = Literal["auto", "asgi3", "asgi2"]

LIFESPAN_MODES = ("auto", "on", "off")
LOOP_TYPES = ("none", "auto", "asyncio", "uvloop")
WS_TYPES = ("auto", "none", "websockets", "websockets-sansio", "wsproto")
HTTP_TYPES = ("auto", "h11", "httptools")
INTERFACES = ("auto", "asgi3", "asgi2", "wsgi")
HEADER_MAPS = _defaults.HEADER_MAPS
PROXY_PROTOCOLS = _defaults.PROXY_PROTOCOLS

#: Exit code when the application cannot start (lifespan startup failed), as uvicorn.
STARTUP_FAILURE = 3

SSL_PROTOCOL_VERSION: int = ssl.PROTOCOL_TLS_SERVER

logger = logging.getLogger("fastasgi.error")


class ConfigError(Exception):
    """A setting has a bad value, or the application cannot be loaded.

    The message is one line that names the flag (or the import string) and the bad value.
    ``show_cause`` is set when the cause's traceback helps (an exception raised by the
    user's own code while it was imported or built).
    """

    exit_code = 1

    def __init__(self, message: str, *, show_cause: bool = False) -> None:
        super().__init__(message)
        self.show_cause = show_cause


def flag_name(name: str) -> str:
    """The command-line flag for a Config attribute: ``limit_concurrency`` ->
    ``--limit-concurrency``."""
    return "--" + name.replace("_", "-")


def _invalid(name: str, value: Any, reason: str) -> ConfigError:
    # Worded as click words its own usage errors, so both kinds read alike.
    return ConfigError(f"Invalid value for '{flag_name(name)}': {value!r} {reason}.")


# uvicorn settings that this version cannot honour yet: (attribute, asked_for, message).
# Each is refused when asked for; an entry is removed when its feature lands.
NOT_SUPPORTED: list[tuple[str, Callable[[Any], bool], str]] = [
    (
        "http",
        lambda v: v != "auto",
        "--http {value} is not supported: fastasgi always uses its own llhttp-based HTTP/1.1 protocol (--http auto)",
    ),
    (
        "interface",
        lambda v: v == "wsgi",
        "--interface wsgi is not supported: fastasgi serves ASGI 3 and ASGI 2 applications",
    ),
    (
        "ws",
        lambda v: v == "wsproto",
        "--ws wsproto is not supported: fastasgi's WebSockets are its own implementation (--ws auto)",
    ),
    (
        "reset_contextvars",
        bool,
        "--reset-contextvars is not supported yet",
    ),
]


class Config:
    """Every setting of one server. Arguments are uvicorn's (same names, same defaults,
    same meaning) plus:

    ``app_dir``: a directory put first on ``sys.path`` before the app is imported.
    ``limit_request_head_size``: most bytes in a request line plus headers (431 beyond it);
    uvicorn's ``h11_max_incomplete_event_size`` is accepted as another name for it.
    ``limit_request_fields``: most header lines in one request (431 beyond it).
    ``limit_request_body``: most bytes in a request body (413 beyond it); None: no limit.
    ``timeout_request_head``: seconds to receive a whole request head once it has begun
    (slowloris defence; 408 and close); ``timeout_request_body``: seconds without a body
    byte while the app waits for the body (408 and close); ``timeout_request``: seconds
    for a whole request, head to the response's end (the app is cancelled; 504, or a close
    once the response has begun; websockets are exempt once accepted). 0 or None turns each
    off.
    ``access_log_format``: the access line, with ``%(atom)s`` parts (see
    ``fastasgi._accesslog.ACCESS_LOG_ATOMS``); None: uvicorn's line.
    ``bind``: listening addresses, each ``HOST:PORT``, ``[IPV6]:PORT``, ``unix:PATH`` or
    ``fd://N``; when given they replace ``host``/``port``/``uds``/``fd``.
    ``reuse_port``: ``SO_REUSEPORT`` on the TCP listeners; with ``workers`` each worker
    gets listeners of its own (see ``fastasgi.supervisors``).
    ``http2``: serve HTTP/2 too (h2c by its preface, h2 by ALPN); ``http2_*``: its SETTINGS
    and windows (see ``fastasgi._defaults``); ``http2_max_headers_size`` defaults to
    ``limit_request_head_size``.
    ``limit_max_memory`` (MiB of RSS) and ``limit_worker_lifetime`` (seconds): recycle a
    worker past either, each limit plus a random jitter of up to ``limit_*_jitter`` per
    worker. The supervisor starts the replacement and waits until it is ready before the old
    worker stops accepting; setting either runs the supervisor even with one worker.
    ``drain_delay``: seconds between SIGTERM (or the first SIGINT) and the graceful stop,
    during which ``/readyz`` on the admin listener answers 503 and the server keeps serving
    (the load balancer's time to take it out of rotation); 0: stop at once.
    ``admin_bind``: the address of the admin listener (``GET /metrics``, see
    ``fastasgi.admin``): ``HOST:PORT``, ``[IPV6]:PORT`` or ``unix:PATH``; None (the
    default): no admin listener, and nothing is counted.
    ``log_format``: ``"text"`` (uvicorn's lines) or ``"json"`` (one JSON object per line,
    see ``fastasgi.logging.JsonFormatter``); it changes the default log config only, a
    ``log_config`` of one's own says how lines look.
    ``worker_init``: ``"module:function"`` (or the function), called with no arguments once
    in every process that serves, before the app is imported (see ``load``).
    ``header_map``: what happens to a request header field whose name contains ``_``
    (gunicorn's setting): ``"drop"`` it, ``"refuse"`` the request (400), or pass it
    through (``"dangerous"``). Behind a proxy that strips ``X-Forwarded-For``, an
    ``X_Forwarded_For`` would get through, and WSGI-style mappings (Django's ``META``) read
    both as ``HTTP_X_FORWARDED_FOR``.
    ``proxy_protocol``: ``"off"``, or read a PROXY protocol header (haproxy's) before HTTP
    on every connection, only from peers in ``forwarded_allow_ips``: ``"v1"``, ``"v2"``, or
    ``"auto"`` (either, or none); see ``fastasgi.middleware.proxy_protocol``. Not with TLS.

    ``forwarded_allow_ips`` (None: ``$FORWARDED_ALLOW_IPS``, else ``127.0.0.1,::1``) and
    ``workers`` (None: ``$WEB_CONCURRENCY``, else 1) read the environment as uvicorn does,
    after ``env_file`` has been loaded.
    """

    def __init__(
        self,
        app: Any,
        host: str | None = _defaults.HOST,
        port: int = _defaults.PORT,
        uds: str | os.PathLike[str] | None = None,
        fd: int | None = None,
        loop: LoopType | str = _defaults.LOOP,
        http: str = _defaults.HTTP,
        ws: WSType | str = _defaults.WS,
        ws_max_size: int = _defaults.WS_MAX_SIZE,
        ws_max_queue: int = _defaults.WS_MAX_QUEUE,
        ws_ping_interval: float | None = _defaults.WS_PING_INTERVAL,
        ws_ping_timeout: float | None = _defaults.WS_PING_TIMEOUT,
        ws_per_message_deflate: bool = _defaults.WS_PER_MESSAGE_DEFLATE,
        ws_per_message_deflate_level: int = _defaults.WS_PER_MESSAGE_DEFLATE_LEVEL,
        lifespan: LifespanType | str = _defaults.LIFESPAN,
        env_file: str | os.PathLike[str] | None = None,
        log_config: LogConfig = LOGGING_CONFIG,
        log_level: str | int | None = None,
        access_log: bool = True,
        use_colors: bool | None = None,
        interface: InterfaceType | str = _defaults.INTERFACE,
        reload: bool = False,
        reload_dirs: list[str] | str | None = None,
        reload_delay: float = _defaults.RELOAD_DELAY,
        reload_includes: list[str] | str | None = None,
        reload_excludes: list[str] | str | None = None,
        workers: int | None = None,
        reuse_port: bool = False,
        proxy_headers: bool = True,
        server_header: bool = True,
        date_header: bool = True,
        forwarded_allow_ips: list[str] | str | None = None,
        root_path: str = "",
        limit_concurrency: int | None = None,
        limit_max_requests: int | None = None,
        limit_max_requests_jitter: int = _defaults.LIMIT_MAX_REQUESTS_JITTER,
        http2: bool = _defaults.HTTP2,
        http2_max_concurrent_streams: int = _defaults.HTTP2_MAX_CONCURRENT_STREAMS,
        http2_initial_stream_window_size: int = _defaults.HTTP2_INITIAL_STREAM_WINDOW_SIZE,
        http2_initial_connection_window_size: int = _defaults.HTTP2_INITIAL_CONNECTION_WINDOW_SIZE,
        http2_max_frame_size: int = _defaults.HTTP2_MAX_FRAME_SIZE,
        http2_max_headers_size: int | None = None,
        limit_max_memory: int | None = _defaults.LIMIT_MAX_MEMORY,
        limit_max_memory_jitter: int = _defaults.LIMIT_MAX_MEMORY_JITTER,
        limit_worker_lifetime: float | None = _defaults.LIMIT_WORKER_LIFETIME,
        limit_worker_lifetime_jitter: float = _defaults.LIMIT_WORKER_LIFETIME_JITTER,
        backlog: int = _defaults.BACKLOG,
        timeout_keep_alive: float = _defaults.TIMEOUT_KEEP_ALIVE,
        timeout_notify: float = _defaults.TIMEOUT_NOTIFY,
        timeout_graceful_shutdown: float | None = None,
        timeout_worker_healthcheck: float = _defaults.TIMEOUT_WORKER_HEALTHCHECK,
        drain_delay: float = _defaults.DRAIN_DELAY,
        callback_notify: Callable[..., Awaitable[None]] | None = None,
        ssl_keyfile: str | os.PathLike[str] | None = None,
        ssl_certfile: str | os.PathLike[str] | None = None,
        ssl_keyfile_password: str | None = None,
        ssl_version: int = SSL_PROTOCOL_VERSION,
        ssl_cert_reqs: int = ssl.CERT_NONE,
        ssl_ca_certs: str | os.PathLike[str] | None = None,
        ssl_ciphers: str | None = None,
        ssl_context_factory: Callable[..., Any] | None = None,
        headers: list[tuple[str, str]] | list[str] | None = None,
        factory: bool = False,
        h11_max_incomplete_event_size: int | None = None,
        reset_contextvars: bool = False,
        app_dir: str | None = None,
        limit_request_head_size: int = _defaults.LIMIT_REQUEST_HEAD_SIZE,
        limit_request_fields: int = _defaults.LIMIT_REQUEST_FIELDS,
        limit_request_body: int | None = None,
        timeout_request_head: float | None = _defaults.TIMEOUT_REQUEST_HEAD,
        timeout_request_body: float | None = _defaults.TIMEOUT_REQUEST_BODY,
        timeout_request: float | None = _defaults.TIMEOUT_REQUEST,
        access_log_format: str | None = None,
        bind: list[str] | tuple[str, ...] | str | None = None,
        header_map: str = _defaults.HEADER_MAP,
        log_format: str = _defaults.LOG_FORMAT,
        worker_init: str | Callable[[], Any] | None = None,
        admin_bind: str | None = _defaults.ADMIN_BIND,
        proxy_protocol: str = _defaults.PROXY_PROTOCOL,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.uds = os.fspath(uds) if uds is not None else None
        self.fd = fd
        self.loop = loop
        self.http = http
        self.ws = ws
        self.ws_max_size = ws_max_size
        self.ws_max_queue = ws_max_queue
        self.ws_ping_interval = ws_ping_interval
        self.ws_ping_timeout = ws_ping_timeout
        self.ws_per_message_deflate = ws_per_message_deflate
        self.ws_per_message_deflate_level = ws_per_message_deflate_level
        self.lifespan = lifespan
        self.env_file = env_file
        self.log_config = log_config
        self.log_level = log_level
        self.access_log = access_log
        self.use_colors = use_colors
        self.interface = interface
        self.reload = reload
        self.reload_dirs = reload_dirs
        self.reload_delay = reload_delay
        self.reload_includes = reload_includes
        self.reload_excludes = reload_excludes
        self.workers = workers
        self.reuse_port = reuse_port
        self.proxy_headers = proxy_headers
        self.server_header = server_header
        self.date_header = date_header
        self.forwarded_allow_ips = forwarded_allow_ips
        self.root_path = root_path
        self.limit_concurrency = limit_concurrency
        self.limit_max_requests = limit_max_requests
        self.limit_max_requests_jitter = limit_max_requests_jitter
        self.http2 = http2
        self.http2_max_concurrent_streams = http2_max_concurrent_streams
        self.http2_initial_stream_window_size = http2_initial_stream_window_size
        self.http2_initial_connection_window_size = http2_initial_connection_window_size
        self.http2_max_frame_size = http2_max_frame_size
        self.http2_max_headers_size = http2_max_headers_size
        self.limit_max_memory = limit_max_memory
        self.limit_max_memory_jitter = limit_max_memory_jitter
        self.limit_worker_lifetime = limit_worker_lifetime
        self.limit_worker_lifetime_jitter = limit_worker_lifetime_jitter
        self.backlog = backlog
        self.timeout_keep_alive = timeout_keep_alive
        self.timeout_notify = timeout_notify
        self.timeout_graceful_shutdown = timeout_graceful_shutdown
        self.timeout_worker_healthcheck = timeout_worker_healthcheck
        self.drain_delay = drain_delay
        self.callback_notify = callback_notify
        self.ssl_keyfile = ssl_keyfile
        self.ssl_certfile = ssl_certfile
        self.ssl_keyfile_password = ssl_keyfile_password
        self.ssl_version = ssl_version
        self.ssl_cert_reqs = ssl_cert_reqs
        self.ssl_ca_certs = ssl_ca_certs
        self.ssl_ciphers = ssl_ciphers
        self.ssl_context_factory = ssl_context_factory
        self.headers = list(headers or [])
        self.factory = factory
        self.h11_max_incomplete_event_size = h11_max_incomplete_event_size
        self.reset_contextvars = reset_contextvars
        self.app_dir = app_dir
        self.limit_request_head_size = limit_request_head_size
        self.limit_request_fields = limit_request_fields
        self.limit_request_body = limit_request_body
        self.timeout_request_head = timeout_request_head
        self.timeout_request_body = timeout_request_body
        self.timeout_request = timeout_request
        self.access_log_format = access_log_format
        self.header_map = header_map
        self.log_format = log_format
        self.worker_init = worker_init
        self.bind = [bind] if isinstance(bind, str) else list(bind or [])
        self.admin_bind = admin_bind
        self.proxy_protocol = proxy_protocol
        #: where the admin listener listens (from admin_bind): ("tcp", (host, port)) or
        #: ("unix", path); None: no admin listener
        self.admin_endpoint: _sockets.Endpoint | None = None
        #: where to listen: ("tcp", (host, port)), ("unix", path) or ("fd", n); see endpoints
        self.endpoints: list[_sockets.Endpoint] = []
        #: trusted proxies, parsed from forwarded_allow_ips (set after the environment is read)
        self.trusted_proxies: Any = None
        #: the server's SSLContext when TLS is on (built by load())
        self.ssl: ssl.SSLContext | None = None

        self.loaded = False
        self.loaded_app: Any = None
        #: ``--header`` values as (lower-case name, value) bytes, ready for the wire
        self.encoded_headers: list[tuple[bytes, bytes]] = []

        # Logging first, so that every later error is reported through it.
        self._validate_logging()
        self.configure_logging()
        if self.log_format != _defaults.LOG_FORMAT and self.log_config not in (None, LOGGING_CONFIG):
            logger.warning(
                "--log-format %s has no effect with --log-config: the log config says how lines look.",
                self.log_format,
            )
        self._validate()
        self._load_env_file()
        self._apply_web_concurrency()
        self._validate_operations()
        if self.reuse_port and any(kind != "tcp" for kind, _ in self.endpoints):
            raise ConfigError(
                "--reuse-port needs TCP addresses: it cannot be used with unix sockets or --fd."
            )
        if self.reload and (self.limit_max_memory is not None or self.limit_worker_lifetime is not None):
            raise ConfigError(
                "--limit-max-memory and --limit-worker-lifetime recycle --workers processes:"
                " they cannot be used with --reload."
            )
        if self.limit_max_memory is not None and not os.path.exists("/proc/self/statm"):
            raise ConfigError("--limit-max-memory reads the workers' RSS from /proc: it needs Linux.")
        if (reload_dirs or reload_includes or reload_excludes) and not reload:
            logger.warning(
                "--reload-dir, --reload-include and --reload-exclude have no effect without --reload."
            )

    # -- validation ---------------------------------------------------------------------

    def _validate(self) -> None:
        _check_choice("loop", self.loop, LOOP_TYPES, allow_import_string=True)
        _check_choice("http", self.http, HTTP_TYPES)
        _check_choice("ws", self.ws, WS_TYPES)
        _check_choice("lifespan", self.lifespan, LIFESPAN_MODES)
        _check_choice("interface", self.interface, INTERFACES)
        _check_choice("header_map", self.header_map, HEADER_MAPS)
        _check_choice("proxy_protocol", self.proxy_protocol, PROXY_PROTOCOLS)
        if self.ws == "websockets-sansio":
            self.ws = "websockets"  # one implementation, fastasgi's own (sans-I/O already)

        if self.host is not None and not isinstance(self.host, str):
            raise _invalid("host", self.host, "is not a host name or address")
        _check_int("port", self.port, 0, 65535)
        _check_int("fd", self.fd, 0, optional=True)
        _check_int("backlog", self.backlog, 1)
        _check_int("workers", self.workers, 1, optional=True)
        _check_int("limit_concurrency", self.limit_concurrency, 1, optional=True)
        _check_int("limit_max_requests", self.limit_max_requests, 1, optional=True)
        _check_int("limit_max_requests_jitter", self.limit_max_requests_jitter, 0)
        _check_int("http2_max_concurrent_streams", self.http2_max_concurrent_streams, 1, 2**31 - 1)
        # RFC 9113 6.5.2 and 6.9.1: the windows are at most 2^31-1; frames 2^14 to 2^24-1
        _check_int("http2_initial_stream_window_size", self.http2_initial_stream_window_size, 1, 2**31 - 1)
        _check_int(
            "http2_initial_connection_window_size",
            self.http2_initial_connection_window_size,
            65535,
            2**31 - 1,
        )
        _check_int("http2_max_frame_size", self.http2_max_frame_size, 16384, 2**24 - 1)
        _check_int("http2_max_headers_size", self.http2_max_headers_size, 1, 2**31 - 1, optional=True)
        _check_int("limit_max_memory", self.limit_max_memory, 1, optional=True)
        _check_int("limit_max_memory_jitter", self.limit_max_memory_jitter, 0)
        _check_number("limit_worker_lifetime", self.limit_worker_lifetime, optional=True, positive=True)
        _check_number("limit_worker_lifetime_jitter", self.limit_worker_lifetime_jitter)
        _check_int("limit_request_head_size", self.limit_request_head_size, 1)
        _check_int("limit_request_fields", self.limit_request_fields, 1)
        _check_int("h11_max_incomplete_event_size", self.h11_max_incomplete_event_size, 1, optional=True)
        _check_int("ws_max_size", self.ws_max_size, 1)
        _check_int("ws_max_queue", self.ws_max_queue, 1)
        _check_int("ws_per_message_deflate_level", self.ws_per_message_deflate_level, 0, 9)
        _check_number("ws_ping_interval", self.ws_ping_interval, optional=True, positive=True)
        _check_number("ws_ping_timeout", self.ws_ping_timeout, optional=True, positive=True)
        _check_number("timeout_keep_alive", self.timeout_keep_alive)
        _check_number("timeout_notify", self.timeout_notify)
        _check_number("timeout_graceful_shutdown", self.timeout_graceful_shutdown, optional=True)
        _check_number("timeout_worker_healthcheck", self.timeout_worker_healthcheck, positive=True)
        _check_number("drain_delay", self.drain_delay)
        _check_number("reload_delay", self.reload_delay)
        if not isinstance(self.root_path, str):
            raise _invalid("root_path", self.root_path, "is not a string")

        h11_size = self.h11_max_incomplete_event_size
        if h11_size is not None:
            if self.limit_request_head_size not in (_defaults.LIMIT_REQUEST_HEAD_SIZE, h11_size):
                raise ConfigError(
                    "--h11-max-incomplete-event-size and --limit-request-head-size are two "
                    f"names for one limit; got {h11_size} and {self.limit_request_head_size}."
                )
            self.limit_request_head_size = h11_size

        self.encoded_headers = [_encode_header(header) for header in self.headers]
        if self.worker_init is not None and not callable(self.worker_init):
            module, _, function = str(self.worker_init).partition(":")
            if not isinstance(self.worker_init, str) or not module or not function:
                raise _invalid("worker_init", self.worker_init, 'is not of the form "module:function"')

        for name, asked_for, message in NOT_SUPPORTED:
            value = getattr(self, name)
            if asked_for(value):
                raise ConfigError(message.format(value=value))

    def _validate_logging(self) -> None:
        _check_choice("log_format", self.log_format, LOG_FORMATS)
        if self.log_level is not None and not isinstance(self.log_level, int):
            if not isinstance(self.log_level, str) or self.log_level.lower() not in LOG_LEVELS:
                choices = ", ".join(repr(level) for level in LOG_LEVELS)
                raise _invalid("log_level", self.log_level, f"is not one of {choices}")

    def configure_logging(self) -> None:
        """Apply the logging settings (done by ``__init__``; again in a process that
        received this object pickled). Raises ``ConfigError`` naming ``--log-config``."""
        try:
            configure_logging(
                self.log_config,
                log_level=self.log_level,
                use_colors=self.use_colors,
                access_log=self.access_log,
                access_log_format=self.access_log_format,
                log_format=self.log_format,
            )
        except ImportError as exc:
            raise ConfigError(
                f"--log-config {self.log_config!r} needs PyYAML: pip install pyyaml ({exc})"
            ) from None
        except (OSError, ValueError, TypeError, AttributeError, KeyError, RuntimeError) as exc:
            # dictConfig reports a bad config as ValueError, fileConfig as KeyError or
            # RuntimeError; both can be long, so keep the first line.
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            shown = self.log_config if isinstance(self.log_config, (str, os.PathLike)) else "<dict>"
            raise ConfigError(
                f"Invalid value for '--log-config': {os.fspath(shown)!r} cannot be used: {reason}"
            ) from None

    def _load_env_file(self) -> None:
        if self.env_file is None:
            return
        if not os.path.isfile(self.env_file):
            raise _invalid("env_file", os.fspath(self.env_file), "is not a file")
        try:
            from dotenv import load_dotenv
        except ImportError:
            raise ConfigError(
                "--env-file needs python-dotenv: pip install python-dotenv (or fastasgi[standard])"
            ) from None
        logger.info("Loading environment from '%s'", os.fspath(self.env_file))
        load_dotenv(dotenv_path=self.env_file)

    def _apply_web_concurrency(self) -> None:
        # uvicorn's (and gunicorn's) fallback for --workers; read after --env-file, as uvicorn.
        value = os.environ.get("WEB_CONCURRENCY")
        if self.workers is not None or not value:
            return
        try:
            workers = int(value)
        except ValueError:
            raise ConfigError(
                f"Invalid value for 'WEB_CONCURRENCY': {value!r} is not a valid integer."
            ) from None
        if workers < 1:
            raise ConfigError(f"Invalid value for 'WEB_CONCURRENCY': {value!r} is not in the range x>=1.")
        self.workers = workers

    def _validate_operations(self) -> None:
        """Limits, timeouts, proxies, TLS, access log format and listening addresses."""
        _check_int("limit_request_body", self.limit_request_body, 0, optional=True)
        _check_number("timeout_request_head", self.timeout_request_head, optional=True)
        _check_number("timeout_request_body", self.timeout_request_body, optional=True)
        _check_number("timeout_request", self.timeout_request, optional=True)

        if self.access_log_format is not None:
            if not isinstance(self.access_log_format, str):
                raise _invalid("access_log_format", self.access_log_format, "is not a string")
            try:
                compile_access_format(self.access_log_format)
            except ValueError as exc:
                raise ConfigError(f"Invalid value for '--access-log-format': {exc}.") from None

        if self.forwarded_allow_ips is None:
            self.forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", _defaults.FORWARDED_ALLOW_IPS)
        try:
            self.trusted_proxies = TrustedProxies(self.forwarded_allow_ips)
        except (ValueError, TypeError, AttributeError) as exc:
            raise _invalid(
                "forwarded_allow_ips", self.forwarded_allow_ips, str(exc) or "is not a list"
            ) from None

        self._validate_ssl()
        if self.proxy_protocol != "off" and self.is_ssl:
            # The header comes before the TLS handshake on the wire; asyncio's TLS layer
            # would read it as a ClientHello.
            raise ConfigError(
                f"--proxy-protocol {self.proxy_protocol} cannot be used with TLS (--ssl-certfile):"
                " terminate TLS at the proxy, or use --proxy-protocol off."
            )
        self.endpoints = self._endpoints()
        self.admin_endpoint = self._admin_endpoint()

    def _validate_ssl(self) -> None:
        if self.ssl_cert_reqs not in (ssl.CERT_NONE, ssl.CERT_OPTIONAL, ssl.CERT_REQUIRED):
            raise _invalid(
                "ssl_cert_reqs", self.ssl_cert_reqs, "is not one of 0 (none), 1 (optional), 2 (required)"
            )
        _check_int("ssl_version", self.ssl_version, 0)
        for name in ("ssl_certfile", "ssl_keyfile", "ssl_ca_certs"):
            path = getattr(self, name)
            if path is not None and not os.path.isfile(path):
                raise _invalid(name, os.fspath(path), "is not a file")
        if self.ssl_certfile is None and self.ssl_context_factory is None:
            # Without a certificate there is no TLS: refuse the TLS settings instead of
            # dropping them.
            given = [
                flag_name(name)
                for name, default in (
                    ("ssl_keyfile", None),
                    ("ssl_keyfile_password", None),
                    ("ssl_ca_certs", None),
                    ("ssl_ciphers", None),
                    ("ssl_cert_reqs", ssl.CERT_NONE),
                    ("ssl_version", SSL_PROTOCOL_VERSION),
                )
                if getattr(self, name) != default
            ]
            if given:
                verb = "needs" if len(given) == 1 else "need"
                raise ConfigError(
                    f"{', '.join(given)} {verb} --ssl-certfile: TLS is on only with a certificate."
                )
        if (
            self.ssl_cert_reqs != ssl.CERT_NONE
            and self.ssl_ca_certs is None
            and self.ssl_context_factory is None
        ):
            logger.warning(
                "--ssl-cert-reqs %d without --ssl-ca-certs: no client certificate can be verified.",
                self.ssl_cert_reqs,
            )

    def _endpoints(self) -> list[_sockets.Endpoint]:
        if self.bind:
            if self.uds is not None or self.fd is not None:
                raise ConfigError(
                    "--bind cannot be combined with --uds or --fd; give them as --bind unix:PATH or --bind fd://N."
                )
            endpoints = []
            for value in self.bind:
                try:
                    endpoints.append(_sockets.parse_bind(value))
                except ValueError as exc:
                    raise _invalid("bind", value, str(exc)) from None
            return endpoints
        if self.fd is not None:
            return [("fd", self.fd)]
        if self.uds is not None:
            return [("unix", self.uds)]
        return [("tcp", (self.host, self.port))]

    def _admin_endpoint(self) -> _sockets.Endpoint | None:
        """``--admin-bind``: ``HOST:PORT``, ``[IPV6]:PORT`` or ``unix:PATH`` (a port is
        required: the default one is the app's), never an address the app is served on."""
        value = self.admin_bind
        if value is None:
            return None
        try:
            endpoint = _sockets.parse_bind(value)
        except ValueError as exc:
            raise _invalid("admin_bind", value, str(exc)) from None
        kind = endpoint[0]
        # A port is required: parse_bind's default port is the app's.
        if kind == "fd" or (kind == "tcp" and ":" not in value.strip().rpartition("]")[2]):
            raise _invalid("admin_bind", value, "is not HOST:PORT, [IPV6]:PORT or unix:PATH")
        if any(_same_address(endpoint, app) for app in self.endpoints):
            raise _invalid(
                "admin_bind", value, "is an address the app is served on; the admin listener needs its own"
            )
        return endpoint

    def create_ssl_context(self) -> ssl.SSLContext | None:
        """The server's TLS context from the ``ssl_*`` settings (None without TLS): the
        certificate chain, client verification, ciphers, and ALPN advertising http/1.1.
        ``ssl_context_factory(config, default_factory)`` may build or adjust it, as in
        uvicorn. Raises ``ConfigError`` naming the flag whose file or value is refused."""
        if self.ssl_context_factory is not None:
            context = self.ssl_context_factory(self, self._default_ssl_context)
            if not isinstance(context, ssl.SSLContext):
                raise ConfigError(
                    f"ssl_context_factory must return an ssl.SSLContext, got {type(context).__name__}."
                )
            return context
        if self.ssl_certfile is None:
            return None
        return self._default_ssl_context()

    def _default_ssl_context(self) -> ssl.SSLContext:
        if self.ssl_certfile is None:
            raise ConfigError("The default SSL context needs --ssl-certfile.")
        try:
            context = ssl.SSLContext(self.ssl_version)
        except (ValueError, OSError) as exc:
            raise _invalid("ssl_version", self.ssl_version, f"cannot be used ({exc})") from None
        password = self.ssl_keyfile_password
        try:
            context.load_cert_chain(
                self.ssl_certfile, self.ssl_keyfile, (lambda: password) if password else None
            )
        except (ssl.SSLError, OSError, ValueError) as exc:
            flags = "'--ssl-certfile' / '--ssl-keyfile'" + (" / '--ssl-keyfile-password'" if password else "")
            raise ConfigError(
                f"Invalid value for {flags}: cannot load the certificate and its key ({exc})."
            ) from None
        context.verify_mode = ssl.VerifyMode(self.ssl_cert_reqs)
        if self.ssl_ca_certs:
            try:
                context.load_verify_locations(self.ssl_ca_certs)
            except (ssl.SSLError, OSError, ValueError) as exc:
                raise _invalid(
                    "ssl_ca_certs", os.fspath(self.ssl_ca_certs), f"cannot be loaded ({exc})"
                ) from None
        if self.ssl_ciphers:
            try:
                context.set_ciphers(self.ssl_ciphers)
            except ssl.SSLError:
                raise _invalid(
                    "ssl_ciphers", self.ssl_ciphers, "is not a cipher list OpenSSL accepts"
                ) from None
        # RFC 7301 / RFC 9113 3.3: offer h2 first when HTTP/2 is on; a client offering only
        # http/1.1 gets it, and without HTTP/2 a client offering h2 falls back.
        context.set_alpn_protocols(["h2", "http/1.1"] if self.http2 else ["http/1.1"])
        return context

    def bind_sockets(self) -> list[socket.socket]:
        """The listening sockets of every endpoint, as uvicorn's ``Config.bind_socket``
        (see ``fastasgi._sockets.bind``). Raises ``BindError``, an OSError whose
        ``where`` names the address."""
        return _sockets.bind(self.endpoints, self.backlog, self.reuse_port)

    # -- derived settings ---------------------------------------------------------------

    @property
    def asgi_version(self) -> Literal["2.0", "3.0"]:
        return "2.0" if self.interface == "asgi2" else "3.0"

    @property
    def supervised(self) -> bool:
        """Whether serving needs a supervisor process: ``--reload``, more than one worker,
        or recycling that must start a replacement before the old process stops accepting
        (``--limit-max-memory``, ``--limit-worker-lifetime``, or ``--limit-max-requests``
        with ``--workers`` given). ``--limit-max-requests`` alone keeps uvicorn's meaning: the
        single server process exits, and whoever started it starts it again."""
        if self.reload or (self.workers or 1) > 1:
            return True
        if self.limit_max_memory is not None or self.limit_worker_lifetime is not None:
            return True
        return self.workers is not None and self.limit_max_requests is not None

    @property
    def is_ssl(self) -> bool:
        return bool(self.ssl_keyfile or self.ssl_certfile or self.ssl_context_factory)

    def get_loop_factory(self) -> Callable[[], asyncio.AbstractEventLoop] | None:
        """The event loop constructor for ``--loop``; None means asyncio's default."""
        if self.loop == "none":
            return None
        if self.loop == "auto":
            try:
                import uvloop
            except ImportError:
                return _asyncio_loop_factory()
            return uvloop.new_event_loop
        if self.loop == "asyncio":
            return _asyncio_loop_factory()
        if self.loop == "uvloop":
            try:
                import uvloop
            except ImportError:
                raise ConfigError(
                    "--loop uvloop needs uvloop: pip install uvloop (or fastasgi[standard])"
                ) from None
            return uvloop.new_event_loop
        # "module:attr": a custom loop factory, as uvicorn allows.
        try:
            factory: Callable[[], asyncio.AbstractEventLoop] = import_from_string(
                self.loop, what="the --loop factory"
            )
        except LoadError as exc:
            raise ConfigError(str(exc), show_cause=exc.show_cause) from exc.__cause__
        return factory

    # -- the application ----------------------------------------------------------------

    def load(self) -> None:
        """Call ``worker_init`` (see ``run_worker_init``), import the application
        (``"module:attr"`` or an object), call it when it is a factory, decide ASGI 3 or
        ASGI 2 and wrap the latter (``fastasgi._importer``), put the proxy headers
        middleware around it and build the TLS context. Raises ``ConfigError``.

        Every process that serves calls this: the single server, each ``--workers``
        process (forked; the supervisor never loads), the ``--reload`` server process.
        The gunicorn worker class imports the app through gunicorn and calls
        ``run_worker_init`` itself, first."""
        if self.loaded:
            return
        if self.app_dir is not None:
            sys.path.insert(0, self.app_dir)

        # The app's modules are imported below: what the process needs first (tracing,
        # error reporting, a metrics client) is set up here, in the process that serves.
        run_worker_init(self.worker_init)
        try:
            app, self.interface = load_app(self.app, factory=self.factory, interface=self.interface)
        except LoadError as exc:
            raise ConfigError(str(exc), show_cause=exc.show_cause) from exc.__cause__
        if self.proxy_headers:
            app = ProxyHeadersMiddleware(app, self.trusted_proxies)
        self.ssl = self.create_ssl_context()

        self.loaded_app = app
        self.loaded = True


def _same_address(one: _sockets.Endpoint, other: _sockets.Endpoint) -> bool:
    """Would ``one`` and ``other`` be the same listening address (port 0 never is)?"""
    if one[0] != other[0]:
        return False
    if one[0] == "unix":
        return bool(os.path.abspath(one[1]) == os.path.abspath(other[1]))
    if one[0] != "tcp":
        return False
    (host, port), (other_host, other_port) = one[1], other[1]
    if port == 0 or port != other_port:
        return False
    wildcard = (None, "", "0.0.0.0", "::")
    return host == other_host or host in wildcard or other_host in wildcard


class WorkerInitError(ConfigError):
    """``--worker-init`` could not be imported, or raised: the process cannot serve. Exit
    code 3 as a failed lifespan startup, with every supervisor alike (the ``--workers``
    supervisor and gunicorn's arbiter stop instead of restarting such a worker in a loop)."""

    exit_code = STARTUP_FAILURE


#: (process id, worker_init) pairs already called: once per process, however many times
#: a Config is loaded in it
_worker_init_done: set[tuple[int, Any]] = set()


def run_worker_init(worker_init: str | Callable[[], Any] | None) -> None:
    """Import ``worker_init`` (``"module:function"``, or the function itself) and call it
    with no arguments, once in this process. Raises ``WorkerInitError`` in one line naming
    ``--worker-init``; when the function raised, the cause (its traceback) is kept."""
    if worker_init is None:
        return
    key = (os.getpid(), worker_init)
    if key in _worker_init_done:
        return
    if isinstance(worker_init, str):
        shown = worker_init
    else:
        shown = getattr(worker_init, "__qualname__", repr(worker_init))
    try:
        function = import_from_string(worker_init, what="the --worker-init function")
    except LoadError as exc:
        raise WorkerInitError(str(exc), show_cause=exc.show_cause) from exc.__cause__
    if not callable(function):
        raise WorkerInitError(
            f"Invalid value for '--worker-init': {shown!r} is not callable (got {type(function).__name__})."
        )
    try:
        result = function()
    except Exception as exc:  # noqa: BLE001 - whatever the user's init raises, reported in one line
        raise WorkerInitError(
            f"--worker-init {shown!r} raised {type(exc).__name__}: {exc}", show_cause=True
        ) from exc.with_traceback(exc.__traceback__.tb_next if exc.__traceback__ else None)
    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()  # never awaited: no "was never awaited" warning
        raise WorkerInitError(
            f"Invalid value for '--worker-init': {shown!r} returned an awaitable; it must be a"
            " plain function (it runs before the event loop serves)."
        )
    _worker_init_done.add(key)


def _check_choice(name: str, value: Any, choices: tuple[str, ...], allow_import_string: bool = False) -> None:
    if value in choices:
        return
    if allow_import_string and isinstance(value, str) and ":" in value:
        return
    listed = ", ".join(repr(choice) for choice in choices)
    raise _invalid(name, value, f"is not one of {listed}")


def _check_int(
    name: str, value: Any, minimum: int, maximum: int | None = None, optional: bool = False
) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise _invalid(name, value, "is not a valid integer")
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"{minimum}<=x<={maximum}" if maximum is not None else f"x>={minimum}"
        raise _invalid(name, value, f"is not in the range {bounds}")


def _check_number(name: str, value: Any, optional: bool = False, positive: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
        raise _invalid(name, value, "is not a valid number")
    if value < 0 or (positive and value == 0):
        raise _invalid(name, value, "is not in the range x>0" if positive else "is not in the range x>=0")


def encode_header(header: Any) -> tuple[bytes, bytes]:
    """A ``--header`` given as ``"Name:Value"`` or ``(name, value)`` -> wire bytes
    (lower-case name). Raises ``ValueError`` saying what is wrong with it."""
    if isinstance(header, str):
        name, sep, value = header.partition(":")
        if not sep:
            raise ValueError(f"{header!r} is not of the form NAME:VALUE")
    elif isinstance(header, (tuple, list)) and len(header) == 2:
        name, value = header
    else:
        raise ValueError(f"{header!r} is not of the form NAME:VALUE")
    name, value = str(name).strip(), str(value).strip()
    shown = f"{name}:{value}"
    try:
        encoded = name.lower().encode("latin-1"), value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"{shown!r} is not latin-1 text") from None
    if not is_token(encoded[0]):
        raise ValueError(f"{shown!r} has an invalid header name")
    try:
        check_header(*encoded)  # the check every response header passes
    except RuntimeError:
        raise ValueError(f"{shown!r} has CR, LF or NUL in its value") from None
    return encoded


def _encode_header(header: Any) -> tuple[bytes, bytes]:
    try:
        return encode_header(header)
    except ValueError as exc:
        raise ConfigError(f"Invalid value for '--header': {exc}.") from None


def _asyncio_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    if sys.platform == "win32":
        return asyncio.ProactorEventLoop
    return asyncio.SelectorEventLoop
